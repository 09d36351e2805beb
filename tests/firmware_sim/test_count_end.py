"""When the simulator stops counting deliveries (issue 20): while the broker is still delivering, it waits.

The demo's embedded amqtt broker, on a loaded machine, took every prediction from the devices' outboxes but
fanned them out to subscribers at ~100 a second: the simulator's subscriber stopped at a fixed 30 s (plus 1 s
per 2,000 published) and called the rest missing (1,514 of 6,000 in one run), while `edgernn listen`, read
later, had them all. Here a fake broker delivers at a chosen pace on a fake clock: no waiting, no load.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import firmware_sim.subscriber as subscriber_module
from edge_runtime.publish.tracker import SeqTracker
from firmware_sim.engine import Simulation
from firmware_sim.report import count_line
from firmware_sim.subscriber import CountingSubscriber


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


class SlowBroker(CountingSubscriber):
    """The subscriber process, replaced by a broker that delivers `rate` predictions a second of the fake
    clock, up to `upto` of them, from the moment the count starts."""

    def __init__(self, clock: FakeClock, workdir: Path, rate: float, upto: int) -> None:
        super().__init__("mqtt://127.0.0.1:1", "edgernn", workdir)
        self.clock, self.rate, self.upto, self.t0 = clock, rate, upto, clock.now
        self.tracker, self.reply = SeqTracker(), ""
        self.proc = None

    def _count(self) -> int:
        n = min(self.upto, int(self.rate * (self.clock.now - self.t0)))
        have = self.tracker.unique
        if n > have:
            self.tracker.add_many("dev0000", list(range(have + 1, n + 1)), 0)
        return n

    def _send(self, cmd: str) -> None:
        if cmd == "stats":
            self.reply = json.dumps({"received": self._count(), "distinct": self._count()})
        elif cmd == "quit":
            self.tracker.save(self.out)
            self.reply = json.dumps({"done": True})

    def _read(self, timeout: float) -> dict[str, Any]:
        return dict(json.loads(self.reply))


def _count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, published: int, rate: float, upto: int) -> Any:
    clock = FakeClock()
    monkeypatch.setattr(subscriber_module, "time", clock)
    sim = object.__new__(Simulation)
    sim._subscriber = SlowBroker(clock, tmp_path, rate, upto)
    results = [SimpleNamespace(published=np.array([published]))]
    got = sim._count_delivered(results)  # type: ignore[arg-type]
    return got, clock.now - 1000.0


def test_the_count_waits_for_a_broker_that_is_still_delivering(monkeypatch, tmp_path):
    got, waited = _count(monkeypatch, tmp_path, published=6000, rate=100.0, upto=6000)  # a 60 s backlog
    assert len(got.seqs["dev0000"]) == 6000  # the old fixed bound (33 s) counted 3,300 and called 2,700 missing
    assert 59.0 <= waited <= 62.0
    assert getattr(got, "stopped", "") == ""


def test_the_count_ends_when_the_broker_has_delivered_nothing_for_a_while(monkeypatch, tmp_path):
    got, waited = _count(monkeypatch, tmp_path, published=6000, rate=100.0, upto=4000)  # 2,000 never come
    assert len(got.seqs["dev0000"]) == 4000
    assert 49.0 <= waited <= 52.0  # 40 s of deliveries, then 10 s without one
    assert got.stopped == "no delivery for 10 s"
    line = count_line({"count": {"waited_s": got.waited_s, "stopped": got.stopped}})
    assert "delivery count: the subscriber counted for 50 s after the run and stopped (no delivery for 10 s)" in line
