"""The delivery plot's curves: what a subscriber received never runs ahead of what the devices produced.

Through a broker the subscriber counts deliveries per wall-clock second, and the report maps those bins onto
the simulated seconds it sampled. The demo's delivery.png showed the dashed "received" curve above "produced"
early in the run: a bin was counted at its middle, so a sample taken inside the bin got deliveries made after it.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from firmware_sim.report import _series
from firmware_sim.runner import Series
from firmware_sim.subscriber import CountingSubscriber, Delivered
from tests.fixtures.mosquitto import Mosquitto

RATE = 100.0  # readings a second, fleet-wide


def _run(origin: float, first_sample: float, seconds: int, latency: float) -> tuple[Series, Delivered]:
    """A real-time run: readings produced evenly from wall time 0, each delivered `latency` s later; the
    simulator samples once a simulated second at wall `first_sample + i`; the subscriber's bins count from
    `origin`."""
    walls = first_sample + np.arange(seconds)  # (seconds,)
    made = np.arange(RATE * walls[-1] + 1) / RATE  # (N,) wall time of each reading ...
    made = made[made < walls[-1]]  # ... none after the last sample (the run ends there)
    series = Series(
        t=[float(i + 1) for i in range(seconds)],
        produced=[int(np.sum(made < w)) for w in walls],  # cumulative, read at the sample
        outbox=[0] * seconds,
        wall=walls.tolist(),
    )
    bins = np.floor(made + latency - origin).astype(int)
    per_second = np.bincount(bins[bins >= 0], minlength=int(bins.max()) + 1)
    return series, Delivered(seqs={}, duplicates={}, per_second=per_second, started=origin)


@pytest.mark.parametrize("first_sample", [0.6, 1.0, 1.3, 1.97])
@pytest.mark.parametrize("latency", [0.0, 0.01, 0.4])
def test_received_never_exceeds_produced_at_any_sample(first_sample: float, latency: float) -> None:
    series, delivered = _run(origin=0.0, first_sample=first_sample, seconds=20, latency=latency)
    out = _series(SimpleNamespace(series=series), [], delivered)
    produced, received = np.cumsum(out["produced"]), np.cumsum(out["delivered"])
    assert np.all(received <= produced), (received - produced).max()
    # nothing is lost in the mapping: every delivery lands in some bin, and the curve trails by a second at most
    assert received[-1] == delivered.per_second.sum()
    assert np.all(received[1:] >= produced[:-1] - RATE * latency - 1), (produced[:-1] - received[1:]).max()


@pytest.mark.broker
def test_the_subscriber_counts_from_its_own_origin(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The parent launched the subscriber process well before the child's first bin (interpreter start-up,
    subscribing): the bins are mapped from the origin the child reports, not from the launch."""
    launched = time.time()
    sub = CountingSubscriber(mosquitto.url, "edgernn", tmp_path, client_id="counter-origin", engine="paho").start()
    try:
        ready = time.time()
        assert launched + 0.05 < sub.started <= ready  # a Python child takes well over 50 ms to import and subscribe
    finally:
        sub.finish()
