"""The independent subscriber that counts what the broker delivered, by (device, seq).

It runs as its own process (`python -m firmware_sim.subscriber`), so counting 10k messages a second does
not compete with the simulated devices for the interpreter lock. It holds a persistent QoS 1 session
(clean session off, a fixed client id): across a broker restart with persistence, nothing sent to it is
lost, so every gap it reports is the devices' or the broker's, not its own.

Control is line-based over stdin/stdout:
    parent -> child   "stats"           child -> parent  {"received": N, "distinct": M}
    parent -> child   "quit"            child writes the result file, then {"done": true}
The result (`np.savez`): device names, per-device received-seq bitmaps (bit s set: seq s arrived), duplicates
per device, and deliveries per wall-clock second since the subscriber started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from edge_runtime.publish.tracker import SEQ, SeqTracker
from edgernn.errors import PublishError


def _serve(url: str, prefix: str, client_id: str, out: Path, engine: str = "auto") -> int:
    from firmware_sim.mosquitto_sub import start_feed

    u = urlparse(url)
    counter = SeqTracker()
    feed = start_feed(u, prefix, client_id, counter, 15.0) if engine in ("auto", "mosquitto_sub") else None
    if feed is None and engine == "mosquitto_sub":
        print(json.dumps({"error": f"mosquitto_sub cannot count at {url}"}), flush=True)
        return 1
    stop = feed.stop if feed is not None else _paho_feed(u, prefix, client_id, counter)
    if stop is None:
        print(json.dumps({"error": f"could not subscribe at {url} within 15 s"}), flush=True)
        return 1
    # the wall-clock time the per-second bins count from: the report maps them onto simulated seconds with it
    origin = time.time() - (time.monotonic() - counter.t0)
    engine_used = "mosquitto_sub" if feed is not None else "paho"
    print(json.dumps({"ready": True, "engine": engine_used, "origin": origin}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            print(json.dumps({"received": counter.received, "distinct": counter.unique}), flush=True)
        elif cmd == "quit":
            break
    stop()
    counter.save(out)
    print(json.dumps({"done": True}), flush=True)
    return 0


def _paho_feed(u: Any, prefix: str, client_id: str, counter: SeqTracker) -> Callable[[], None] | None:
    """Count with a paho client on its own thread; returns how to stop it, or None if it did not subscribe."""
    import paho.mqtt.client as mqtt

    topic_re = re.compile(rf"^{re.escape(prefix)}/([^/]+)/prediction$")
    ready = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"{prefix}/+/prediction", qos=1)

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        ready.set()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        m = topic_re.match(msg.topic)
        s = SEQ.search(msg.payload)
        if m and s:
            counter.add(m.group(1), int(s.group(1)))

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
    )
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(1, 2)
    if u.scheme == "mqtts":
        client.tls_set()
    client.connect_async(u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883), keepalive=30)
    client.loop_start()
    if not ready.wait(15):
        client.loop_stop()
        return None

    def stop() -> None:
        client.loop_stop()
        client.disconnect()

    return stop


@dataclass
class Delivered:
    """What the subscriber saw: per device the set of sequence numbers, duplicates; deliveries per second."""

    seqs: dict[str, np.ndarray]  # device -> sorted distinct seqs received
    duplicates: dict[str, int]
    per_second: np.ndarray  # (S,) deliveries per wall-clock second since the subscriber started
    started: float  # time.time() the subscriber's per-second bins count from
    stopped: str = ""  # why counting ended before every published prediction arrived ("": none missing)
    waited_s: float = 0.0  # how long the count waited after the run for the broker to deliver the rest

    @classmethod
    def load(cls, path: Path, started: float) -> Delivered:
        with np.load(path) as z:
            names, bits, offsets, dups = z["devices"], z["bits"], z["offsets"], z["dups"]
            seqs = {
                str(n): np.flatnonzero(np.unpackbits(bits[offsets[i] : offsets[i + 1]], bitorder="little"))
                for i, n in enumerate(names)
            }
            return cls(seqs, {str(n): int(d) for n, d in zip(names, dups, strict=True)}, z["per_second"], started)


class CountingSubscriber:
    """Parent-side handle of the subscriber process."""

    def __init__(
        self, url: str, prefix: str, workdir: Path, client_id: str = "edgernn-sim-counter", engine: str = "auto"
    ) -> None:
        """`engine`: auto (mosquitto_sub when it can serve the broker, else paho), mosquitto_sub or paho."""
        self.url, self.prefix, self.engine = url, prefix, engine
        self.engine_used = ""
        self.out = workdir / "delivered.npz"
        self.client_id = client_id
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0.0
        self.stopped = ""  # why `wait_for` stopped before every prediction had arrived ("": it had them all)
        self.waited_s = 0.0

    def start(self, timeout: float = 20.0) -> CountingSubscriber:
        cmd = [sys.executable, "-m", "firmware_sim.subscriber", "--url", self.url, "--prefix", self.prefix]
        cmd += ["--client-id", self.client_id, "--out", str(self.out), "--engine", self.engine]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
        )  # its own session: Ctrl-C must not stop the count before the simulation has flushed
        self.started = time.time()
        reply = self._read(timeout)
        if not reply.get("ready"):
            self.stop()
            raise PublishError(f"the counting subscriber could not subscribe at {self.url}: {reply}")
        self.engine_used = str(reply.get("engine", ""))
        self.started = float(reply.get("origin", self.started))  # the child's own origin, not its launch
        return self

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            return {"error": f"no answer from the subscriber within {timeout} s"}
        return dict(json.loads(result[0]))

    def _send(self, cmd: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def distinct(self) -> int:
        """Distinct (device, seq) received so far."""
        self._send("stats")
        return int(self._read(10.0).get("distinct", 0))

    def wait_for(self, n: int, timeout: float, limit: float = math.inf) -> int:
        """Poll until `n` distinct predictions arrived, or none arrived for `timeout` seconds, or `limit` seconds
        passed in all; `stopped` says which.

        A broker still handing out its backlog is waited for, however long it takes at its pace: the embedded
        amqtt broker under load fans out ~100 messages a second per subscriber after the devices' outboxes
        have emptied into it, and a count that stopped at a fixed time called the rest missing while
        `edgernn listen` got every one of them."""
        start = time.monotonic()
        got = self.distinct()
        moved = start  # when the count last grew
        while got < n:
            now = time.monotonic()
            if now - moved >= timeout:
                self.stopped = f"no delivery for {timeout:.0f} s"
                break
            if now - start >= limit:
                self.stopped = f"still counting after {limit:.0f} s"
                break
            time.sleep(0.2)
            seen, got = got, self.distinct()
            if got > seen:
                moved = time.monotonic()
        self.waited_s = time.monotonic() - start
        return got

    def finish(self) -> Delivered:
        self._send("quit")
        reply = self._read(60.0)
        self.stop()
        if not reply.get("done"):
            raise PublishError(f"the counting subscriber did not finish: {reply}")
        got = Delivered.load(self.out, self.started)
        got.stopped, got.waited_s = self.stopped, self.waited_s
        return got

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # end of input: the subscriber exits
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="count predictions delivered by an MQTT broker, by (device, seq)")
    ap.add_argument("--url", required=True)
    ap.add_argument("--prefix", default="edgernn")
    ap.add_argument("--client-id", default="edgernn-sim-counter")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--engine", choices=["auto", "mosquitto_sub", "paho"], default="auto")
    ns = ap.parse_args(argv)
    return _serve(ns.url, ns.prefix, ns.client_id, ns.out, ns.engine)


if __name__ == "__main__":
    sys.exit(main())
