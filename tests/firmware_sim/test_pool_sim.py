"""A pooling bundle (`--pool 4`) in the simulator: readings that only fill a pool are booked, not lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim import FaultSpec, run_simulation
from tests.firmware_sim.conftest import train_imu_bundle
from tests.firmware_sim.test_simulation import _balanced, _scenario

POOL = 4


@pytest.fixture(scope="module")
def pooled_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield train_imu_bundle(
        tmp_path_factory.mktemp("imu-pool"), hidden=8, window=10, epochs=2, lr=None, pool=POOL
    )


def test_readings_that_fill_a_pool_are_booked_and_the_fleet_balances(pooled_bundle: Path) -> None:
    faults = [
        FaultSpec("nan-burst", at=2, duration=1, devices=["dev0000"], params={"channels": 2}),
        FaultSpec("clock-gap", at=5, duration=0, devices=["dev0001"], params={"step": 30.0}),
        FaultSpec("reboot", at=7, duration=0.2, devices=["dev0002"]),
    ]
    report = run_simulation(_scenario(pooled_bundle, 3, 10.0, faults))
    _balanced(report)
    dev = report.data["devices"]
    # three of every four readings only fill a pool, the NaN-repaired ones too (flagged, not dropped)
    assert dev["dev0000"]["dropped"] == {"pooling": 150} and dev["dev0000"]["predictions"] == 50
    assert dev["dev0000"]["flagged"] == {"non_finite": 20}
    # the reading after the gap resets its stream and starts a fresh pool: flagged, booked as pooling
    assert dev["dev0001"]["flagged"] == {"gap": 1}
    assert dev["dev0001"]["predictions"] + dev["dev0001"]["dropped"]["pooling"] == 200


def test_a_pooling_bundle_refuses_to_replay_its_pooled_heldout_data(pooled_bundle: Path) -> None:
    """Its held-out data are pool means: replayed through the device they would be pooled twice, and the
    accuracy would describe nothing the device does. The bundle carries none, and replay says what to give."""
    from edge_runtime.bundle.loader import Bundle
    from edgernn.errors import ConfigError
    from firmware_sim.signals.replay import load_replay

    manifest = Bundle.open(pooled_bundle).manifest
    assert not manifest.replay and not (pooled_bundle / "heldout.npz").exists()
    with pytest.raises(ConfigError, match=r"pools 4 readings per model step.*--signal replay:YOUR\.csv"):
        load_replay("replay:bundle", manifest, pooled_bundle, {})
