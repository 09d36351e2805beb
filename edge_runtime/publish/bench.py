"""Outbox throughput against raw paho-mqtt QoS 1, in the same run, against the same broker.

    python -m edge_runtime.publish.bench                         # starts a throwaway Mosquitto on 127.0.0.1
    python -m edge_runtime.publish.bench --broker mqtt://pi:1883 -n 50000 --rounds 3

raw:    paho `publish(qos=1)` of N predictions (serialised with to_json, as the device does), then wait for
        every PUBACK. Nothing survives a crash.
outbox: `MqttPublisher.publish` of the same N predictions (SQLite WAL, synchronous=full, grouped commits,
        rows deleted on PUBACK), then `flush()` until the outbox is empty. Every row survives a crash.
Rounds alternate raw / outbox so both see the same machine load; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_runtime.publish import BrokerConfig, OutboxConfig, open_publisher, parse_broker_url
from edge_runtime.stream.prediction import Prediction
from edgernn.errors import ConfigError


def _pred(i: int) -> Prediction:
    return Prediction(
        seq=0, time=1.7e9 + i * 0.01, stream="bench", values=[0.1, 0.2, 0.7], label="walk", probability=0.7,
        latency_us=120.0, model="0123456789ab",
    )  # fmt: skip


def raw_paho(url: str, n: int, timeout: float = 300.0) -> float:
    """msg/s of plain paho QoS 1: publish n, wait for n PUBACKs."""
    import paho.mqtt.client as mqtt

    addr, _, _ = parse_broker_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgernn-bench-raw-{time.time_ns()}")
    done, acked = threading.Event(), [0]

    def on_publish(c: object, u: object, mid: int, rc: object, props: object) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client.on_publish = on_publish
    client.connect(addr.host, addr.port)
    client.loop_start()
    try:
        t0 = time.perf_counter()
        for i in range(n):
            p = _pred(i)
            p.seq = i + 1
            client.publish("edgernn/bench/prediction", p.to_json(), qos=1)
        if not done.wait(timeout):
            raise RuntimeError(f"raw paho: only {acked[0]} of {n} acknowledged in {timeout}s")
        return n / (time.perf_counter() - t0)
    finally:
        client.disconnect()
        client.loop_stop()


def outbox(url: str, n: int, state_dir: Path, timeout: float = 300.0) -> float:
    """msg/s through the durable outbox: publish n, flush until the broker acknowledged all."""
    pub = open_publisher(url, "bench", state_dir=state_dir, config=BrokerConfig(), outbox=OutboxConfig())
    try:
        t0 = time.perf_counter()
        for i in range(n):
            pub.publish(_pred(i))
        if not pub.flush(timeout):
            raise RuntimeError(f"outbox: {pub.depth} of {n} still unacknowledged after {timeout}s")
        return n / (time.perf_counter() - t0)
    finally:
        pub.close()


@contextmanager
def throwaway_mosquitto() -> Iterator[str]:
    """A Mosquitto on a free 127.0.0.1 port with the recommended persistence settings; stopped on exit."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise ConfigError("no mosquitto binary found: install mosquitto, or give --broker URL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as d:
        conf = Path(d) / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {d}/", "autosave_on_changes true", "autosave_interval 1",
                 "max_queued_messages 1000000", "user root"]  # fmt: skip
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def run(url: str, n: int, rounds: int) -> dict[str, Any]:
    raw, box = [], []
    with tempfile.TemporaryDirectory(prefix="edgernn-outbox-bench-") as d:
        for r in range(rounds):
            raw.append(raw_paho(url, n))
            box.append(outbox(url, n, Path(d) / f"round{r}"))
    return {
        "messages": n,
        "rounds": rounds,
        "raw_paho_qos1_msg_per_s": round(max(raw)),
        "outbox_msg_per_s": round(max(box)),
        "ratio": round(max(box) / max(raw), 2),
        "raw_rounds": [round(x) for x in raw],
        "outbox_rounds": [round(x) for x in box],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_runtime.publish.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--broker", help="broker URL (default: start a throwaway Mosquitto)")
    ap.add_argument("-n", type=int, default=20_000, help="messages per round (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (default: %(default)s)")
    ns = ap.parse_args(argv)
    if ns.broker:
        result = run(ns.broker, ns.n, ns.rounds)
    else:
        with throwaway_mosquitto() as url:
            result = run(url, ns.n, ns.rounds)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
