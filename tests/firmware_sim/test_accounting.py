"""Fleet accounting, per device and per fault: every reading the clock produced is a prediction or a drop
with a reason (or was never sampled), and every prediction was delivered or is still in its outbox.

The expected figures come from the scenario (rate x duration, the fault's window), not from the report's
own counters, so a counter that drifts from the clock fails here even when the report's sums balance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware_sim import FaultSpec, Report, Scenario, run_simulation
from firmware_sim.profiles import get_profile
from firmware_sim.scenario import FleetSpec
from tests.firmware_sim.conftest import IMU_RATE

DEVICES, DURATION = 3, 12.0
TICKS = int(DURATION * IMU_RATE)  # readings the clock asks each device for
HIT = "dev0001"  # the device each device fault hits; the others run clean


def _run(bundle: Path, faults: list[FaultSpec]) -> Report:
    fleet = FleetSpec(bundle=bundle, devices=DEVICES, profile=get_profile("pi-4"), rate=IMU_RATE)
    return run_simulation(Scenario(fleets=[fleet], duration_s=DURATION, faults=faults, progress=False, seed=5))


@pytest.fixture(scope="module")
def clean(imu_bundle: Path) -> Report:
    return _run(imu_bundle, [])


def _books(report: Report) -> None:
    """The identities every device and the fleet satisfy, whatever the faults."""
    devs = report.data["devices"]
    assert sorted(devs) == [f"dev{i:04d}" for i in range(DEVICES)]
    for name, d in devs.items():
        assert d["readings_produced"] + d["not_sampled"] == TICKS, name  # the clock's count, not a counter's
        assert d["readings_produced"] == d["predictions"] + sum(d["dropped"].values()), name
        assert d["predictions"] == d["published"] == d["delivered"] + d["missing"], name
        assert d["duplicates"] == 0, name
        if d["published"]:
            assert d["seq"][1] - d["seq"][0] + 1 == d["published"], name  # no seq gap, none twice
    f = report.fleet
    for key in ("readings_produced", "predictions", "published", "delivered", "missing", "not_sampled"):
        assert f[key] == sum(d[key] for d in devs.values()), key
    for key in ("dropped", "flagged"):
        summed: dict[str, int] = {}
        for d in devs.values():
            for reason, n in d[key].items():
                summed[reason] = summed.get(reason, 0) + n
        assert f[key] == summed, key
    # what was published and not delivered is what the outboxes still hold (or their bounds dropped)
    assert f["published"] == f["delivered"] + f["outbox_left"] + f["outbox_dropped"]
    assert f["accounting"]["balanced"] and f["unattributed"] == {}
    acc = report.data["fleets"]["fleet0"]["accounting"]
    assert acc["runtime_readings"] == f["readings_produced"] and acc["runtime_predictions"] == f["predictions"]


def _untouched(report: Report, clean: Report, hit: list[str]) -> None:
    """Devices no fault hit make exactly the predictions of the same devices in a run without faults."""
    for name, d in report.data["devices"].items():
        if name in hit:
            continue
        ref = clean.data["devices"][name]
        for key in ("readings_produced", "predictions", "dropped", "flagged", "not_sampled", "seq", "accuracy"):
            assert d[key] == ref[key], (name, key)


def test_a_clean_fleet_predicts_and_delivers_every_reading(clean: Report) -> None:
    _books(clean)
    for name, d in clean.data["devices"].items():
        assert d["not_sampled"] == 0 and d["flagged"] == {} and d["missing"] == 0, name
        assert d["predictions"] + d["dropped"].get("warmup", 0) == TICKS, name
        assert set(d["dropped"]) <= {"warmup"}, name
    assert clean.fleet["outbox_left"] == 0


# fault -> what the hit device's record must show, from the fault's own window (4 s to 7 s, 20 readings a second)
DEVICE_FAULTS: dict[str, tuple[FaultSpec, dict[str, Any]]] = {
    "dropout": (FaultSpec("dropout", at=4, duration=3, devices=[HIT]), {"not_sampled": 60, "flagged": {"gap": 1}}),
    "nan-burst": (
        FaultSpec("nan-burst", at=4, duration=3, devices=[HIT], params={"channels": 2}),
        {"not_sampled": 0, "flagged": {"non_finite": 60}, "dropped": {}},
    ),
    "stuck": (FaultSpec("stuck", at=4, duration=3, devices=[HIT]), {"not_sampled": 0, "flagged": {}, "dropped": {}}),
    "reboot": (FaultSpec("reboot", at=4, duration=0.2, devices=[HIT]), {"not_sampled": 4, "reboots": 1}),
    "clock-gap": (
        FaultSpec("clock-gap", at=4, duration=0, devices=[HIT], params={"step": 30.0}),
        {"not_sampled": 0, "flagged": {"gap": 1}},
    ),
}


@pytest.mark.parametrize("kind", list(DEVICE_FAULTS))
def test_each_device_fault_is_booked_on_its_device_only(imu_bundle: Path, clean: Report, kind: str) -> None:
    spec, want = DEVICE_FAULTS[kind]
    report = _run(imu_bundle, [spec])
    _books(report)
    hit = report.data["devices"][HIT]
    for key, value in want.items():
        assert hit[key] == value, (key, hit[key])
    assert hit["missing"] == 0
    _untouched(report, clean, [HIT])


def test_spikes_and_jitter_are_counted_as_the_injector_made_them(imu_bundle: Path, clean: Report) -> None:
    faults = [
        FaultSpec("spike", at=2, duration=4, devices=["dev0000"], params={"rate": 0.5, "size": 5.0}),
        FaultSpec("clock-jitter", at=6, duration=4, devices=["dev0002"], params={"sigma_ms": 40.0}),
    ]
    report = run = _run(imu_bundle, faults)
    _books(run)
    devs = report.data["devices"]
    # every spike is far out of range: kept and flagged, one flag per injected spike
    assert devs["dev0000"]["flagged"] == {"out_of_range": report.fleet["faults_injected"]["spike"]}
    assert devs["dev0000"]["predictions"] == clean.data["devices"]["dev0000"]["predictions"]
    # a reading whose time went backwards makes no prediction: each is one dropped reading, on its device
    back = devs["dev0002"]["dropped"].get("backwards", 0)
    assert back > 0 and devs["dev0002"]["predictions"] == clean.data["devices"]["dev0002"]["predictions"] - back
    _untouched(report, clean, ["dev0000", "dev0002"])


def test_an_outage_that_outlasts_the_run_is_the_backlog_then_drains(imu_bundle: Path) -> None:
    report = _run(imu_bundle, [FaultSpec("broker-outage", at=8, duration=60)])
    _books(report)
    after = int((DURATION - 8) * IMU_RATE)  # predictions each device made from 8 s on: they wait
    s = report.series
    assert s["t"] == [float(t) for t in range(1, int(DURATION) + 1)]
    assert s["produced"] == [DEVICES * IMU_RATE] * int(DURATION)  # per second, from the clock
    assert s["outbox"][-1] == DEVICES * after and s["delivered"][8:11] == [0, 0, 0]
    assert report.data["run"]["backlog"] == {
        "outbox_end": DEVICES * after,
        "outbox_max": DEVICES * after,
        "seconds": 4.0,
    }
    # the run's end lifts the outage: the outboxes drain, nothing is lost
    assert sum(s["delivered"]) == report.fleet["delivered"] == report.fleet["published"]
    for name, d in report.data["devices"].items():
        assert d["missing"] == 0 and d["delivered"] == d["published"], name
    assert report.fleet["outbox_left"] == 0 and report.fleet["outbox_dropped"] == 0


def test_an_outage_inside_the_run_delivers_everything_after_it(imu_bundle: Path, clean: Report) -> None:
    report = _run(imu_bundle, [FaultSpec("broker-outage", at=3, duration=4)])
    _books(report)
    assert report.fleet["outbox_peak"] >= 4 * IMU_RATE and report.fleet["outbox_left"] == 0
    for name, d in report.data["devices"].items():
        assert d["missing"] == 0 and d["delivered"] == clean.data["devices"][name]["delivered"], name
