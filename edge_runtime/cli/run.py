"""`edgernn run`: its arguments. The loop they configure is `edge_runtime.device.loop.Runner`.

Imports only the standard library at start; the loop, pyserial, paho-mqtt and the onnxruntime / LiteRT
backends are imported only when the command runs and the flags ask for them.
"""

from __future__ import annotations

import argparse
from typing import Any

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
  no time of its own: this device's clock on arrival; in a stream whose readings carry one -> no_time, kept
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
    from edge_runtime.device.loop import Runner

    return Runner(settings).run()
