"""When a fleet's signals are read: the first chunk before the clock starts, the next a few devices per tick.

In real time a tick that reads every device's next chunk of signal (0.45-0.5 s of CPU per 500 imu devices)
falls more than a tick behind, and so do the ticks after it: these tests count signal reads, not time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim import Scenario, run_simulation
from firmware_sim.profiles import get_profile
from firmware_sim.readings import FleetReadings
from firmware_sim.scenario import FleetSpec
from firmware_sim.signals import device_id, make_signal
from firmware_sim.signals.base import Signal

FEATURES = ["gz", "ax", "ay"]  # a subset, out of the signal's order: the columns are picked by name


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every Signal.read from now on appends its length to the returned list."""
    reads: list[int] = []
    read = Signal.read

    def spy(self: Signal, n: int) -> Any:
        reads.append(n)
        return read(self, n)

    monkeypatch.setattr(Signal, "read", spy)
    return reads


def test_readings_read_ahead_are_the_signals_own_and_no_tick_reads_the_whole_fleet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices, rate, duration = 5, 1.0, 150.0  # chunk 64 ticks: 150 ticks are chunks 0, 1 and a part of 2
    ids = [device_id(i) for i in range(devices)]
    r = FleetReadings("imu", None, FEATURES, rate, 7, first_index=0, offset=0, ids=ids, duration_s=duration, params={})
    assert r.chunk == 64
    reads = _counted(monkeypatch)
    r.prefetch()
    assert len(reads) == devices  # the first chunk of every device, before any tick
    per_tick = []
    seen_x, seen_truth = [], []
    for k in range(int(duration * rate)):
        before = len(reads)
        j = r.ready(k)
        per_tick.append(len(reads) - before)
        seen_x.append(r.x[:, j, :].copy())  # (D, F)
        seen_truth.append(r.truth[:, j].copy())  # (D,)
    assert max(per_tick) <= math.ceil(devices / r.chunk)  # one device's next chunk at a time
    assert len(reads) == devices * 3  # chunks 0, 1, 2 of each device; none past the run's end
    monkeypatch.undo()
    # the same readings and truth as each device's signal read straight through
    channels = list(make_signal("imu", rate).channels)
    cols = [channels.index(f) for f in FEATURES]
    for i in range(devices):
        ref = make_signal("imu", rate, 7, i, duration).read(3 * r.chunk)
        got_x = np.stack([x[i] for x in seen_x])  # (T, F)
        got_truth = np.array([t[i] for t in seen_truth])  # (T,)
        np.testing.assert_array_equal(got_x, ref.x[: len(seen_x), cols].astype(np.float32))
        np.testing.assert_array_equal(got_truth, ref.truth[: len(seen_truth)])


def test_a_real_time_fleet_reads_its_signals_before_the_clock_starts(
    imu_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tick by tick (as in real time), no tick reads more than its share of the next chunk; the first chunk
    is read while the fleet is set up."""
    from firmware_sim.fleet import FleetRun

    devices = 4
    reads = _counted(monkeypatch)
    per_call: list[int] = []
    tick_block = FleetRun.tick_block

    def spy(self: FleetRun, k: int, n: int) -> int:
        before = len(reads)
        out = tick_block(self, k, n)
        per_call.append(len(reads) - before)
        return out

    monkeypatch.setattr(FleetRun, "tick_block", spy)
    monkeypatch.setattr(FleetRun, "block_len", lambda self, k, t_limit: 1)  # one tick per call
    fleet = FleetSpec(bundle=imu_bundle, devices=devices, profile=get_profile("pi-4"), rate=1.0)
    report = run_simulation(Scenario(fleets=[fleet], duration_s=130.0, faults=[], progress=False))
    assert len(per_call) == 130
    assert max(per_call) <= 1  # chunks of 64 ticks, 4 devices: at most one device's next chunk per tick
    assert report.fleet["predictions"] == devices * 130
