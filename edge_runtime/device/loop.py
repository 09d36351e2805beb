"""The device's main loop: readings from a source, one at a time (or a gateway's batch), through the
Predictor, to a publisher (stdout, or MQTT through the durable outbox) that gives each prediction its seq;
state checkpoints that never get ahead of the predictions they imply (the outbox is made durable first) and
carry the publisher's last seqs (`seqfile`); a drain when a finite source ends; a summary at exit.

`edgernn run` (`edge_runtime.cli.run`) builds its settings and calls `Runner(settings).run()`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from array import array
from typing import Any

_LATENCY_RING = 100_000


class Runner:
    def __init__(self, settings: Any) -> None:
        self.s = settings
        self.latencies = array("d", bytes(8 * _LATENCY_RING))  # the last readings' latencies, a ring
        self.source: Any = None
        self.predictions = 0
        self.publisher: Any = None  # the MQTT publisher, when --mqtt
        self.sink: Any = None  # the publisher every prediction goes through: the MQTT one, or stdout
        self._seq_file: Any = None  # where the publisher's last seqs are saved with each state checkpoint
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
                self.sink = self.publisher
            else:
                from edge_runtime.publish.stdout import StdoutPublisher

                self.sink = StdoutPublisher(s.device, None if s.quiet else sys.stdout)
            predictor.autosave = False  # checkpoints follow the publisher: see _checkpoint
            if s.state_dir is not None:
                from edge_runtime.device.seqfile import load_seqs, seq_path

                self._seq_file = seq_path(s.state_dir, s.device)
                last, clean = load_seqs(self._seq_file)  # a store lost, replaced or none: seq goes on, never repeats
                self.sink.resume_seq(last, 0 if clean else s.checkpoint_every)
            started = True
            with contextlib.suppress(Stop):  # a signal arrived while a read was blocked
                self._loop(predictor, self.source, stopper)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._checkpoint(predictor, final=True)  # saves state, releases the backend
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
        emit = self._publish
        limit = self.s.limit
        readings = 0
        next_status = time.monotonic() + 1.0
        for batch in source:
            if len(batch) == 1:
                r = batch[0]
                pred = predictor.step_one(r.reading, t=r.t, stream=r.stream, received=r.received)
                if pred is not None:
                    emit(pred, out)
            else:
                for group in _distinct_groups(batch):
                    times = [r.t for r in group]  # None: no time of its own (t = 0.0 is a time)
                    values, streams = [r.reading for r in group], [r.stream for r in group]
                    preds = predictor.step_many(values, streams, t=times, received=[r.received for r in group])
                    for pred in preds:
                        if pred is not None:
                            emit(pred, out)
            readings += len(batch)
            if predictor.checkpoint_due:
                self._checkpoint(predictor)
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

    def _checkpoint(self, predictor: Any, final: bool = False) -> None:
        """The outbox durable first (a checkpoint must never get ahead of the predictions it implies), then the
        state (`final`: at a clean stop, closing the predictor), then the publisher's last seqs."""
        if self.sink is not None:
            self.sink.sync()
        if final:
            predictor.close()
        else:
            predictor.save_state()
        if self.sink is not None and self._seq_file is not None:
            from edge_runtime.device.seqfile import save_seqs

            save_seqs(self._seq_file, self.sink.last_seqs(), clean=final)

    def _publish(self, pred: Any, out: Any) -> None:
        self.latencies[self.predictions % _LATENCY_RING] = pred.latency_us
        self.predictions += 1
        self.sink.publish(pred)  # gives the prediction its seq

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
