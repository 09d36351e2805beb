"""Signal models: seeded, chunk-independent, with ground truth a user can check by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgernn.errors import ConfigError
from firmware_sim.signals import (
    ACTIVITIES,
    SIGNALS,
    imu_dataset,
    make_signal,
    temperature_dataset,
    to_csv,
    vibration_dataset,
)


@pytest.mark.parametrize("kind", list(SIGNALS))
def test_same_seed_same_stream_whatever_the_chunking(kind: str) -> None:
    a = make_signal(kind, 20.0, seed=3, index=2, duration_s=600).read(4000)
    sig = make_signal(kind, 20.0, seed=3, index=2, duration_s=600)
    parts = [sig.read(n) for n in [7, 1, 400, 33] * 40][:]
    x = np.concatenate([p.x for p in parts])[:4000]
    truth = np.concatenate([p.truth for p in parts])[:4000]
    np.testing.assert_allclose(a.x, x, atol=1e-5)
    assert (a.truth == truth).all()


@pytest.mark.parametrize("kind", list(SIGNALS))
def test_devices_and_seeds_differ(kind: str) -> None:
    base = make_signal(kind, 10.0, seed=0, index=0, duration_s=600).read(500).x
    other_device = make_signal(kind, 10.0, seed=0, index=1, duration_s=600).read(500).x
    other_seed = make_signal(kind, 10.0, seed=1, index=0, duration_s=600).read(500).x
    assert np.abs(base - other_device).mean() > 0.01
    assert np.abs(base - other_seed).mean() > 0.01


def test_imu_activities_differ_the_way_a_model_can_learn() -> None:
    df = imu_dataset(devices=4, duration_s=600, rate=25, seed=0)
    assert list(df.columns) == ["t", "device", "ax", "ay", "az", "gx", "gy", "gz", "activity"]
    assert set(df["activity"]) == set(ACTIVITIES)
    energy = df.groupby("activity")["az"].std()  # vertical bounce: idle << walk < stairs < run
    assert energy["idle"] < 0.5 * energy["walk"] and energy["walk"] < energy["stairs"] < energy["run"]
    lean = df.groupby("activity")["ax"].mean()  # forward lean moves gravity onto x on the stairs
    assert lean["stairs"] < lean["walk"] - 1.5
    # transitions happen: each device goes through several activities in ten minutes
    assert (df.groupby("device")["activity"].nunique() >= 3).all()


def test_vibration_fault_develops_after_its_onset() -> None:
    df = vibration_dataset(devices=6, duration_s=3600, rate=2, seed=0, fault_fraction=1.0)
    for _, dev in df.groupby("device"):
        stage = dev["stage"].to_numpy()
        onset = int(np.argmax(stage != "healthy"))
        assert 0.3 * len(dev) <= onset <= 0.6 * len(dev) + 1  # default onset window
        assert (dev["anomaly"].to_numpy()[onset:] == 1).all() and (dev["anomaly"].to_numpy()[:onset] == 0).all()
        # stages only move forward, and the fault-frequency energy grows with them
        order = {"healthy": 0, "degrading": 1, "failing": 2}
        assert (np.diff([order[s] for s in stage]) >= 0).all()
        bpfo = dev.groupby("stage")["bpfo"].mean()
        assert bpfo["healthy"] < bpfo["degrading"] < bpfo["failing"]
    healthy = vibration_dataset(devices=3, duration_s=600, rate=2, seed=0, fault_fraction=0.0)
    assert healthy["anomaly"].sum() == 0


def test_temperature_excursions_are_the_anomalies() -> None:
    df = temperature_dataset(devices=4, duration_s=4 * 3600, rate=0.5, seed=0)
    share = df["anomaly"].mean()
    assert 0.02 < share < 0.4
    warm = df.groupby("stage")["temp"].mean()
    assert warm["excursion"] > warm["normal"] + 1.0  # the room warms while the door is open


def test_csv_round_trip(tmp_path: Path) -> None:
    import pandas as pd

    df = imu_dataset(devices=2, duration_s=10, rate=10, seed=0)
    path = to_csv(df, tmp_path / "imu.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns) and len(back) == 200
    np.testing.assert_allclose(back["az"], df["az"], rtol=1e-5)


def test_bad_signal_input_names_the_value() -> None:
    with pytest.raises(ConfigError, match=r"unknown signal 'lidar'; allowed: imu, vibration, temperature"):
        make_signal("lidar", 10.0)
    with pytest.raises(ConfigError, match=r"sample rate must be > 0 .* got -1"):
        make_signal("imu", -1.0)
    with pytest.raises(ConfigError, match=r"signal 'vibration': unknown parameters \['fault_frac'\]; allowed: "):
        make_signal("vibration", 10.0, fault_frac=0.2)
    with pytest.raises(ConfigError, match=r"fault_fraction must be a number >= 0, got 'lots'"):
        make_signal("vibration", 10.0, fault_fraction="lots")
