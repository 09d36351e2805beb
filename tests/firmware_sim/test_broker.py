"""Small fleets against a real Mosquitto: every prediction delivered across a broker outage, counted by an
independent subscriber by (device, seq)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from firmware_sim import FaultSpec, Report, Scenario, run_simulation
from firmware_sim.profiles import get_profile
from firmware_sim.scenario import BrokerSpec, FleetSpec
from tests.fixtures.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def _fleet(bundle: Path, devices: int) -> FleetSpec:
    return FleetSpec(bundle=bundle, devices=devices, profile=get_profile("pi-4"), rate=10.0)


def _everything_delivered(report: Report) -> None:
    f = report.fleet
    assert f["accounting"]["balanced"]
    assert f["predictions"] == f["published"] == f["delivered"] > 0
    assert f["missing"] == 0
    for dev, d in report.data["devices"].items():
        assert d["delivered"] == d["published"] == d["seq"][1] - d["seq"][0] + 1, dev


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(), reason="no mosquitto"
)
def test_spawned_broker_stopped_and_started_loses_nothing(imu_bundle: Path) -> None:
    faults = [
        FaultSpec("broker-outage", at=12, duration=8),
        FaultSpec("reboot", at=25, duration=2, devices=["dev0002"]),
    ]
    sc = Scenario(
        fleets=[_fleet(imu_bundle, 5)], duration_s=35, faults=faults, broker=BrokerSpec(url="spawn"), progress=False
    )
    report = run_simulation(sc)
    _everything_delivered(report)
    assert report.data["run"]["outages"] == [{"start": 12.0, "end": 20.0, "kind": "broker-outage"}]
    assert report.fleet["reboots"] == 1
    assert report.fleet["outbox_peak"] >= 8 * 10  # a device's 8 s of predictions waited in its outbox
    assert sum(report.series["delivered"]) == report.fleet["delivered"] + report.fleet["duplicates"]


def test_fixture_broker_outage_and_slow_network_through_the_proxy(imu_bundle: Path, mosquitto: Mosquitto) -> None:
    """The outage stops the fixture's broker (SIGTERM); the slow network delays every byte at a proxy."""
    faults = [
        FaultSpec("slow-network", at=3, duration=6, params={"delay_ms": 200.0}),
        FaultSpec("broker-outage", at=12, duration=5),
    ]
    sc = Scenario(
        fleets=[_fleet(imu_bundle, 3)],
        duration_s=20,
        faults=faults,
        broker=BrokerSpec(url=mosquitto.url),
        progress=False,
    )
    report = run_simulation(sc, broker_control=mosquitto)
    _everything_delivered(report)
    assert [o["kind"] for o in report.data["run"]["outages"]] == ["slow-network", "broker-outage"]
    assert mosquitto.starts == 2  # it really was stopped and started again
    assert report.fleet["outbox_peak"] >= 5 * 10
