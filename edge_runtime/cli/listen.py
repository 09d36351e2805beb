"""`edgernn listen`: subscribe to predictions, drop duplicates by (device, seq), report gaps at the end."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from edge_runtime.publish.base import DEFAULT_PREFIX, check_name, check_prefix, prediction_topic, status_topic
from edge_runtime.publish.config import BrokerConfig, parse_broker_url
from edge_runtime.publish.tracker import SeqTracker
from edgernn.errors import ConfigError, PublishError

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

EPILOG = """\
examples:
  edgernn listen                                          # every device under edgernn/ on 127.0.0.1:1883
  edgernn listen --broker mqtt://pi-gateway:1883 --device dev1 --device dev2
  edgernn listen --json --count 1000 > predictions.jsonl  # JSON lines, stop after 1000 predictions
  edgernn listen --session audit1 --timeout 3600          # a persistent session: nothing missed across restarts

Each prediction carries a per-device sequence number, so duplicates (QoS 1 re-sends) are dropped here and
gaps are reported when listening ends (--count, --timeout or Ctrl-C), with each device's outbox `dropped`
counter from its status topic. Credentials and TLS come from --config or EDGERNN_MQTT_* variables.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "listen",
        help="subscribe to predictions; report gaps and duplicates",
        description="Subscribe to <prefix>/<device>/prediction, print each prediction once (duplicates dropped by "
        "(device, seq)), and report gaps and duplicates at the end.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--broker", default=None, help=f"broker URL, mqtt:// or mqtts:// (default: {DEFAULT_BROKER})")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (default: %(default)s)")
    p.add_argument("--device", action="append", default=[], help="only this device (repeat for several; default: all)")
    p.add_argument("--json", action="store_true", help="print each prediction as one JSON line instead of a table")
    p.add_argument("--count", type=int, default=None, help="stop after N distinct predictions")
    p.add_argument("--timeout", type=float, default=None, help="stop after S seconds")
    p.add_argument("--session", default=None, metavar="ID", help="persistent session with this client id")
    p.add_argument("--config", default=None, type=Path, help="TOML file with an [mqtt] table (credentials, TLS)")
    p.add_argument("--protocol", choices=("3.1.1", "5"), default=None, help="MQTT protocol (default: 3.1.1)")
    p.add_argument("--report", default=None, type=Path, help="also write the final report as JSON to this file")
    p.set_defaults(func=handler)


def handler(ns: argparse.Namespace) -> int:
    if ns.count is not None and ns.count < 1:
        raise ConfigError(f"--count {ns.count}; allowed: 1 or more")
    if ns.timeout is not None and ns.timeout <= 0:
        raise ConfigError(f"--timeout {ns.timeout}; allowed: more than 0 seconds")
    prefix = check_prefix(ns.prefix)
    devices = [check_name("device", d) for d in ns.device]
    config, file_url = BrokerConfig.load(ns.config)
    if ns.protocol:
        from dataclasses import replace

        config = replace(config, protocol=ns.protocol)
    url = ns.broker or file_url or DEFAULT_BROKER
    listener = Listener(url, config, prefix=prefix, devices=devices, session=ns.session)
    table = None if ns.json else Table(sys.stdout)
    deadline = None if ns.timeout is None else time.monotonic() + ns.timeout
    listener.start()
    printed = 0
    try:
        while ns.count is None or printed < ns.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            item = listener.next(min(0.5, remaining) if remaining is not None else 0.5)
            if item is None:
                continue
            kind, device, payload = item
            if kind == "status":
                if table:
                    table.status(device, payload)
            elif ns.json:
                printed += 1
                sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
            elif table:
                printed += 1
                table.row(device, payload)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        sys.stdout.flush()
    report = listener.report()
    print_report(report, sys.stderr)
    if ns.report:
        ns.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


class Listener:
    """A paho subscriber feeding a queue; duplicates by (device, seq) never reach the queue."""

    def __init__(
        self, url: str, config: BrokerConfig, *, prefix: str, devices: list[str], session: str | None = None
    ) -> None:
        self.address, user, password = parse_broker_url(url)
        self.config = config.with_url_credentials(user, password)
        self.prefix, self.devices, self.session = prefix, devices, session
        self.tracker = SeqTracker()
        self.status: dict[str, dict[str, Any]] = {}
        self.invalid = 0
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        self._fatal: Exception | None = None
        self._client: Any = None

    def topics(self) -> list[str]:
        names = self.devices or ["+"]
        return [t for d in names for t in (prediction_topic(self.prefix, d), status_topic(self.prefix, d))]

    def start(self, timeout: float = 10.0) -> None:
        import ssl
        import threading

        from edge_runtime.publish.paho_client import connect_kwargs, new_client, refused, tls_error

        client_id = self.session or f"edgernn-listen-{time.time_ns() % 10**9}"
        clean = self.session is None
        self._client = client = new_client(self.address, self.config, client_id, clean=clean)
        connected = threading.Event()

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                self._fatal = refused(reason, self.address, client_id, self.config)
                if self._fatal is not None:
                    c.disconnect()
                    connected.set()
                return
            c.subscribe([(t, 1) for t in self.topics()])
            connected.set()

        client.on_connect = on_connect
        client.on_message = self._on_message
        try:
            client.connect(self.address.host, self.address.port, **connect_kwargs(self.config, clean=clean))
        except ssl.SSLError as exc:
            raise tls_error(exc, self.address) from exc
        except OSError as exc:
            raise PublishError(f"cannot reach broker {self.address}: {exc.strerror or exc}") from exc
        client.loop_start()
        if not connected.wait(timeout):
            self.stop()
            raise PublishError(f"broker {self.address} did not answer the connection within {timeout:.0f}s")
        if self._fatal is not None:
            self.stop()
            raise self._fatal

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        device, kind = parts[-2], parts[-1]
        try:
            payload = json.loads(msg.payload) if msg.payload else {}
        except ValueError:
            self.invalid += 1
            return
        if kind == "status":
            self.status[device] = payload
            self._queue.put(("status", device, payload))
            return
        seq = payload.get("seq") if isinstance(payload, dict) else None
        if not isinstance(seq, int):
            self.invalid += 1
            return
        if self.tracker.add(device, seq):  # paho's network thread is the only writer of the tracker
            self._queue.put(("prediction", device, payload))

    def next(self, timeout: float) -> tuple[str, str, dict[str, Any]] | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def report(self) -> dict[str, Any]:
        devices = self.tracker.report()
        for device, status in self.status.items():
            outbox = status.get("outbox") if isinstance(status, dict) else None
            if device in devices and isinstance(outbox, dict):
                devices[device]["dropped_by_device"] = outbox.get("dropped")
        return {
            "unique": sum(d["unique"] for d in devices.values()),
            "duplicates": sum(d["duplicates"] for d in devices.values()),
            "missing": sum(d["missing"] for d in devices.values()),
            "invalid": self.invalid,
            "devices": devices,
        }


class Table:
    """One aligned line per prediction: time, device, seq, what it says, latency."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines = 0

    def row(self, device: str, p: dict[str, Any]) -> None:
        if self.lines % 40 == 0:
            self.out.write(f"{'time':12}  {'device':16} {'seq':>8}  {'prediction':40} {'latency':>9}\n")
        self.lines += 1
        t = time.strftime("%H:%M:%S", time.localtime(p.get("time", 0))) + f".{int(p.get('time', 0) * 1000) % 1000:03d}"
        latency = f"{p.get('latency_us', 0) / 1000:.2f} ms"
        self.out.write(f"{t:12}  {device[:16]:16} {p.get('seq', '?'):>8}  {summary(p)[:40]:40} {latency:>9}\n")

    def status(self, device: str, payload: dict[str, Any]) -> None:
        state = payload.get("state", "?")
        outbox = payload.get("outbox") or {}
        extra = f", outbox depth {outbox.get('depth')}, dropped {outbox.get('dropped')}" if outbox else ""
        self.out.write(f"# {device} {state}{extra}\n")


def summary(p: dict[str, Any]) -> str:
    """What a prediction says, in a few words."""
    if p.get("label") is not None:
        prob = p.get("probability")
        return f"{p['label']} ({prob:.2f})" if isinstance(prob, float) else str(p["label"])
    if "anomaly" in p:
        flag = " ANOMALY" if p.get("is_anomaly") else ""
        return f"anomaly score {p['anomaly']:.2f}{flag}"
    values = p.get("values") or []
    shown = " ".join(f"{v:.3g}" for v in values[:4])
    return shown + (" ..." if len(values) > 4 else "")


def print_report(report: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"received {report['unique']} predictions, {report['duplicates']} duplicates dropped, "
        f"{report['missing']} missing\n"
    )
    for device, d in report["devices"].items():
        gaps = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in d["gaps"][:5])
        more = f" (+{len(d['gaps']) - 5} more)" if len(d["gaps"]) > 5 else ""
        dropped = d.get("dropped_by_device")
        line = f"  {device}: seq {d['first']}..{d['last']}, {d['unique']} received, {d['duplicates']} duplicates"
        line += f", {d['missing']} missing" + (f" [{gaps}{more}]" if gaps else "")
        if dropped:
            line += f", {dropped} dropped by the device's outbox bounds"
        out.write(line + "\n")
