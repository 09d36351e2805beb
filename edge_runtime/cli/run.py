"""`edgernn run`: a bundle on a stream of readings, one at a time, state kept; the device's main loop.

Imports only the standard library, NumPy and edge_runtime at start; pyserial, paho-mqtt and the
onnxruntime / LiteRT backends are imported only when the flags ask for them.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from array import array
from typing import Any

_LATENCY_RING = 100_000

EPILOG = """\
examples:
  edgernn run bundles/imu --source csv:walk.csv                      # replay as fast as possible
  edgernn run bundles/imu --source csv:walk.csv --rate recorded      # at the file's own pace
  sensor | edgernn run bundles/imu --source stdin                    # JSON lines: {"t": .., "ax": .., ...}
  edgernn run bundles/imu --source serial:/dev/ttyUSB0@115200 --mqtt mqtt://broker:1883 --state-dir /var/lib/edgernn
  edgernn run bundles/imu --source mqtt:mqtt://broker:1883 --mqtt mqtt://broker:1883   # gateway for many sensors
  edgernn run --config /etc/edgernn/kitchen-imu.toml                 # every flag from a device config

readings: a JSON object of features (plus optional "t" seconds or ISO time, and "stream"), a JSON list of
values in feature order, or CSV with a header. Bad readings are counted and handled by policy, never fatal:
  missing, non_number, non_finite -> hold (last good value); out_of_range -> keep (flagged);
  extra -> ignore; gap -> reset; backwards -> skip        (change with --policy REASON=POLICY)
  always skipped: bad_time (NaN, inf, > 1 day ahead), bad_stream (names: 1-128 printable chars, no / + #),
  unparsable lines (incl. > 64 KiB); a gateway's topic names the stream. Details: docs/bad-input.md
A CSV whose header lacks a feature column is refused at once (--policy missing_column=allow runs it).
output: one JSON line per prediction on stdout, or QoS 1 MQTT messages on <prefix>/<stream>/prediction
(durable outbox in --state-dir; when a CSV or stdin ends, up to --drain-timeout s to deliver what is left); a
summary on stderr at exit. SIGTERM / SIGINT stop cleanly, saving state. Disk trouble (a garbled file, a full or
read-only disk) is counted and said in one line, never fatal: docs/durability.md.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a bundle on a stream of readings, one at a time, state kept",
        description="Run a bundle on readings from a CSV file, stdin, a serial port or MQTT, one reading at a "
        "time with each stream's hidden state kept (and checkpointed), printing or publishing every prediction.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", nargs="?", help="bundle directory (or `bundle` in --config)")
    p.add_argument("--config", help="device config (TOML) carrying any of these flags; flags given here win")
    p.add_argument("--source", help="csv:PATH | stdin | serial:PORT[@BAUD] | mqtt:URL (default: stdin)")
    p.add_argument("--backend", help="auto | numpy | onnxruntime | tflite (default: auto, the fastest here)")
    p.add_argument("--precision", choices=("fp32", "int8"), help="artifact precision (default: fp32)")
    p.add_argument("--artifact", help="run this artifact id exactly (e.g. onnx-int8), overriding backend/precision")
    p.add_argument("--device", help="device id: MQTT topics, state file name (default: dev1)")
    p.add_argument("--stream", help="stream id for readings that name none (default: the device id)")
    p.add_argument("--state-dir", help="hidden-state checkpoints and the MQTT outbox live here (default: none)")
    p.add_argument("--mqtt", help="publish to this broker, mqtt://host:1883 or mqtts://host:8883 (default: stdout)")
    p.add_argument("--prefix", help="MQTT topic prefix (default: edgernn)")
    p.add_argument("--discovery", action="store_true", default=None, help="announce to Home Assistant")
    p.add_argument("--time-column", help="CSV time column (default: t, time, timestamp or ts when present)")
    p.add_argument("--stream-column", help="CSV column naming the stream (default: stream/device/sensor/id)")
    p.add_argument("--rate", choices=("max", "recorded"), help="CSV replay pace (default: max)")
    p.add_argument("--speed", type=float, help="with --rate recorded: times real time (default: 1)")
    p.add_argument("--baud", type=int, help="serial baud rate (default: 115200)")
    p.add_argument("--checkpoint-every", type=int, help="save state every N readings (default: 1000)")
    p.add_argument("--max-state-age", type=float, help="saved state older than this is not restored, s (default: 600)")
    p.add_argument("--max-streams", type=int, help="streams kept; the longest idle is evicted (default: 10000)")
    p.add_argument(
        "--policy",
        action="append",
        metavar="REASON=POLICY",
        help="e.g. missing=impute, out_of_range=hold, gap=keep, warmup=hold, max_gap=5 (repeatable)",
    )
    p.add_argument("--no-verify", dest="verify", action="store_false", default=None, help="skip sha256 checks")
    p.add_argument("--limit", type=int, help="stop after N readings")
    p.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="when the source ends (a CSV replay, stdin at EOF), wait this long for the broker to take what is "
        "still in the outbox before exiting; the rest waits for the next start (default: 10; 0: do not wait)",
    )
    p.add_argument("--quiet", action="store_true", default=None, help="no JSON lines on stdout")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from edge_runtime.device.settings import parse_policy_flags, resolve

    flags = {k: v for k, v in vars(ns).items() if k not in ("func", "command", "config", "policy")}
    flags["policies"] = parse_policy_flags(ns.policy)
    settings = resolve(flags, ns.config)
    return Runner(settings).run()


class Runner:
    def __init__(self, settings: Any) -> None:
        self.s = settings
        self.latencies = array("d", bytes(8 * _LATENCY_RING))  # the last readings' latencies, a ring
        self.source: Any = None
        self.predictions = 0
        self.publisher: Any = None
        self._left_why = ""  # why predictions are still in the outbox at exit

    def run(self) -> int:
        from edge_runtime.device.sources import Stop, Stopper, open_source
        from edge_runtime.stream.predictor import Predictor

        s = self.s
        stopper = Stopper()
        old = {sig: signal.signal(sig, stopper.request) for sig in (signal.SIGTERM, signal.SIGINT)}
        predictor = Predictor.load(
            s.bundle,
            backend=s.backend,
            precision=s.precision,
            state_dir=s.state_dir,
            device=s.device,
            artifact=s.artifact,
            verify=s.verify,
            policies=s.policy_object(),
            checkpoint_every=s.checkpoint_every,
            max_state_age=s.max_state_age,
            max_streams=s.max_streams,
        )
        from edge_runtime.bundle.select import tolerance_warning

        if tolerance_warning(predictor.artifact):
            print(f"edgernn run: {tolerance_warning(predictor.artifact)}", file=sys.stderr)
        if predictor.restored is not None:
            n, age = predictor.restored
            print(
                f"edgernn run: state of {n} stream(s) restored from {predictor.state_path}, {age:.0f} s old "
                f"(restored up to {predictor.max_state_age:.0f} s, --max-state-age)",
                file=sys.stderr,
            )
        started = False
        try:
            broker = None
            if s.mqtt or s.source.startswith("mqtt:"):
                from edge_runtime.device.settings import broker_config

                broker = broker_config(s)
            self.source = open_source(
                s.source,
                predictor.manifest.input.features,
                stopper=stopper,
                stream=s.stream or s.device,
                time_column=s.time_column,
                stream_column=s.stream_column,
                rate=s.rate,
                speed=s.speed,
                baud=s.baud,
                prefix=s.prefix,
                mqtt_config=broker,
                missing_column=s.policy_object().missing_column,
            )
            if s.mqtt:
                from edge_runtime.publish import open_publisher

                self.publisher = open_publisher(
                    s.mqtt,
                    s.device,
                    prefix=s.prefix,
                    state_dir=s.state_dir,
                    config=broker,
                    discovery=s.discovery,
                    manifest=predictor.manifest,
                    ha=s.ha_options(),
                )
                predictor.autosave = False  # checkpoints follow the outbox: see _loop
                floors, clean = predictor.seq_floors()  # an outbox lost or replaced: seq goes on, never repeats
                self.publisher.outbox.resume_seq(floors, 0 if clean else s.checkpoint_every)
            started = True
            with contextlib.suppress(Stop):  # a signal arrived while a read was blocked
                self._loop(predictor, self.source, stopper)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            if self.publisher is not None:
                self.publisher.sync()  # every prediction on disk before the state that implies them
            predictor.close()  # saves state
            if self.publisher is not None:
                self.publisher.status(self._counters(predictor))
                drained = self._drain(stopper)
                self.publisher.close(timeout=0.0 if drained else 5.0)
            sys.stdout.flush()
            if started:  # a source or broker that cannot be opened: its error comes alone, not after a summary
                self._summary(predictor, stopper)
        return 130 if stopper.signal == signal.SIGINT else 0

    def _loop(self, predictor: Any, source: Any, stopper: Any) -> None:
        out = sys.stdout
        interactive = not (self.s.source.startswith("csv:") and self.s.rate == "max")
        emit = self._publish if self.publisher is not None else self._print
        limit = self.s.limit
        readings = 0
        next_status = time.monotonic() + 1.0
        for batch in source:
            if len(batch) == 1:
                r = batch[0]
                pred = predictor.step_one(r.reading, t=r.t, stream=r.stream)
                if pred is not None:
                    emit(pred, out)
            else:
                for group in _distinct_groups(batch):
                    now = time.time()
                    times = [now if r.t is None else r.t for r in group]  # t = 0.0 is a time
                    preds = predictor.step_many([r.reading for r in group], [r.stream for r in group], t=times)
                    for pred in preds:
                        if pred is not None:
                            emit(pred, out)
            readings += len(batch)
            if self.publisher is not None and predictor.checkpoint_due:
                self.publisher.sync()  # a checkpoint must never get ahead of the predictions it implies
                predictor.save_state()
            if interactive and self.publisher is None:
                out.flush()
            if self.publisher is not None and time.monotonic() >= next_status:
                self.publisher.status(self._counters(predictor))
                next_status = time.monotonic() + 1.0
            if stopper.requested or (limit is not None and readings >= limit):
                break

    def _drain(self, stopper: Any) -> bool:
        """The source ended by itself: wait up to --drain-timeout for the outbox to empty (True: it was tried).

        Notes why anything is left, for the summary."""
        pub, limit = self.publisher, self.s.drain_timeout
        if stopper.requested:
            self._left_why = f"stopped by {signal.Signals(stopper.signal).name}"
            return False
        if not pub.depth:
            return True
        if not limit or limit <= 0:
            self._left_why = "--drain-timeout 0"
            return True
        start = time.monotonic()
        if pub.flush(limit):
            return True
        waited = time.monotonic() - start
        if not pub.connected:
            self._left_why = f"the broker was not connected during the {waited:.0f} s drain (--drain-timeout)"
        else:
            self._left_why = f"the broker had not acknowledged them after the {waited:.0f} s drain (--drain-timeout)"
        return True

    def _counters(self, predictor: Any) -> dict[str, Any]:
        """The predictor's counters, plus what the source refused before it was a reading (counted as bad)."""
        c = predictor.counters
        stats = getattr(self.source, "stats", None)
        if stats is not None and stats.unparsable:
            c["bad"] = {**c["bad"], "unparsable": stats.unparsable}
        if stats is not None and getattr(stats, "stream_mismatch", None):
            c["bad"] = {**c["bad"], "stream_mismatch": stats.stream_mismatch}
        return c

    def _print(self, pred: Any, out: Any) -> None:
        self.latencies[self.predictions % _LATENCY_RING] = pred.latency_us
        self.predictions += 1
        if not self.s.quiet:
            out.write(pred.to_json() + "\n")

    def _publish(self, pred: Any, out: Any) -> None:
        self.latencies[self.predictions % _LATENCY_RING] = pred.latency_us
        self.predictions += 1
        self.publisher.publish(pred)

    def _summary(self, predictor: Any, stopper: Any) -> None:
        c = self._counters(predictor)
        parts = [f"{c['readings']} readings", f"{c['predictions']} predictions"]
        if c["skipped"]:
            parts.append(f"{c['skipped']} skipped")
        if c["held_back"]:
            parts.append(f"{c['held_back']} held back (warming up)")
        lines = [f"edgernn run: {', '.join(parts)}"]
        bad = c["bad"]
        lines.append("  bad readings: " + (", ".join(f"{k} {v}" for k, v in sorted(bad.items())) or "none"))
        if self.predictions:
            lat = sorted(self.latencies[: min(self.predictions, _LATENCY_RING)])
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            last = "" if self.predictions <= _LATENCY_RING else f" (last {_LATENCY_RING})"
            lines.append(f"  latency per reading{last}: p50 {p50:.0f} µs, p99 {p99:.0f} µs")
        resets = f"state resets {c['state_resets']}, stale state {c['stale_state']}"
        if c.get("evicted"):
            resets += f", streams evicted {c['evicted']} (--max-streams)"
        lines.append(f"  backend {c['backend']} ({c['artifact']}); {resets}")
        if predictor.state_path is not None and c["streams"] and not c.get("disk", {}).get("state_not_saved"):
            lines.append(f"  state saved to {predictor.state_path}")
        if self.publisher is not None:
            f = self.publisher.outbox_figures()
            line = f"  mqtt: delivered {f['delivered']}, waiting in outbox {f['depth']}, dropped {f['dropped']}"
            if f["depth"] and self._left_why:
                line += f" (left for the next start: {self._left_why})"
            lines.append(line)
            if f.get("disk"):
                lines.append("  outbox disk: " + ", ".join(f"{k} {v}" for k, v in sorted(f["disk"].items())))
        if c.get("disk"):
            lines.append("  state disk: " + ", ".join(f"{k} {v}" for k, v in sorted(c["disk"].items())))
        port: Any = getattr(self.source, "lines", None)
        if getattr(port, "outages", 0):
            lines.append(f"  serial port lost {port.outages} time(s), {port.down_s:.1f} s without readings")
        if stopper.requested:
            lines.append(f"  stopped by {signal.Signals(stopper.signal).name}")
        print("\n".join(lines), file=sys.stderr)


def _distinct_groups(batch: list[Any]) -> list[list[Any]]:
    """Split a batch so no stream appears twice in a group: a stream's k-th reading goes to group k."""
    seen: dict[str, int] = {}
    groups: list[list[Any]] = []
    for rec in batch:
        k = seen.get(rec.stream, 0)
        seen[rec.stream] = k + 1
        if k == len(groups):
            groups.append([])
        groups[k].append(rec)
    return groups
