"""Forecast bundles in the simulator: every forecast is scored against what the replayed file's target column
(or the held-out readings' targets) then did, as `edgernn inspect` scores it, with persistence beside it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import FaultSpec, Scenario, run_simulation
from firmware_sim.metrics import ForecastTracker
from firmware_sim.signals import temperature_dataset, to_csv
from tests.firmware_sim.replaykit import fleet_spec, inspect_numpy_figure, train_and_export
from tests.firmware_sim.test_simulation import _balanced

RENAME = {"temp": "air_c", "humidity": "rh", "power": "watts", "t": "time_s", "device": "room"}
# The simulator scores every published forecast from a stream's first reading; inspect starts at its second
# (reading 0 has no persistence forecast there). Over 4 streams of 180 readings that moves the MAE by <0.1%.
SAME_READINGS_REL = 0.01


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(bundle, CSV): a GRU 1x12 forecasting air_c 2 readings ahead (delta mode), trained by `edgernn train`
    on 4 cold rooms x 20 min at 1 Hz with column names of the user's own; exported numpy-only."""
    root = tmp_path_factory.mktemp("rooms")
    df = temperature_dataset(devices=4, duration_s=1200, rate=1.0, seed=2).rename(columns=RENAME)
    csv = to_csv(df.drop(columns=["anomaly", "stage"]), root / "rooms.csv")
    args = ["--data", str(csv), "--time-column", "time_s", "--series-column", "room", "--target",
            "air_c", "--features", "air_c,rh,watts", "--task", "forecast", "--horizon", "2", "--target-mode",
            "delta", "--cell", "gru", "--hidden", "12", "--window", "20", "--epochs", "4"]  # fmt: skip
    yield train_and_export(args, root), csv


def test_tracker_scores_each_forecast_step_against_the_reading_it_names() -> None:
    """A target that counts readings (k at reading k): a forecaster that knows the future scores MAE 0 at
    every step, persistence misses by s + 1 at step s. A reading with no prediction scores none of the
    forecasts due there and makes none: one value fewer per step for each."""
    tr = ForecastTracker(devices=2, horizon=3, n_targets=1)
    for k in range(50):
        dev = np.array([0, 1]) if k != 20 else np.array([0])  # device 1 made no prediction at reading 20
        target = np.full((len(dev), 1), float(k))
        values = np.tile(np.array([k + 1.0, k + 2.0, k + 3.0]), (len(dev), 1))  # (n, 3) the truth ahead
        tr.add(dev, k, target, values)
    s = tr.summary()
    assert s["mae"] == 0.0 and s["mae_per_output"] == [0.0, 0.0, 0.0]
    n = np.array([49 + 47, 48 + 46, 47 + 45])  # values scored at steps 0, 1, 2 (device 1 misses two of each)
    assert s["persistence_mae"] == pytest.approx((n * [1, 2, 3]).sum() / n.sum())  # misses by s + 1 at step s
    one = tr.summary(np.array([1]))
    assert tr.summary(np.array([0]))["values"] == 49 + 48 + 47
    assert one["values"] == 49 + 48 + 47 - 2 * 3
    assert one["readings"] == 47 and s["readings"] == 49 + 47


def test_no_signal_replays_its_held_out_readings_with_inspects_mae(
    rooms: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No fault, one device per held-out stream from its first reading: the report's MAE is inspect's."""
    bundle, _ = rooms
    inspected, _ = inspect_numpy_figure(bundle, capsys)
    held = json.loads((bundle / "manifest.json").read_text())["replay"]
    per_stream = held["readings"] // held["streams"]
    report = run_simulation(
        Scenario(fleets=[fleet_spec(bundle, held["streams"], offset="start")], duration_s=per_stream, progress=False)
    )
    _balanced(report)
    fc = report.fleet["forecast"]
    # every forecast whose next reading came within the run: all but each stream's last
    assert fc["readings"] == held["readings"] - held["streams"]
    assert fc["mae"] == pytest.approx(inspected, rel=SAME_READINGS_REL)
    assert fc["persistence_mae"] > 0 and len(fc["mae_per_output"]) == 2
    assert f"forecast MAE {fc['mae']:.4g} over {fc['readings']} forecasts" in report.summary()
    assert report.device("dev0000")["forecast"]["readings"] == per_stream - 1


def test_replayed_csv_scores_forecasts_against_its_target_column_through_faults(rooms: tuple[Path, Path]) -> None:
    bundle, csv = rooms
    clean = run_simulation(Scenario(fleets=[fleet_spec(bundle, 4, f"replay:{csv}")], duration_s=240, progress=False))
    faults = [
        FaultSpec("nan-burst", at=30, duration=10, devices=["dev0000"], params={"channels": 1}),
        FaultSpec("dropout", at=60, duration=20, devices=["dev0001"]),
        FaultSpec("reboot", at=100, duration=5, devices=["dev0002"]),
    ]
    sc = Scenario(fleets=[fleet_spec(bundle, 4, f"replay:{csv}")], duration_s=240, faults=faults, progress=False)
    report = run_simulation(sc)
    _balanced(report)
    fc, fc0 = report.fleet["forecast"], clean.fleet["forecast"]
    assert fc0["readings"] == 4 * 240 - 4  # the same devices, offsets and readings without the faults
    assert 0 < fc["mae"] < 5 * fc0["mae"] and fc0["mae"] < 0.5  # degrees C: the file's own units
    # a device that took no reading for 20 s (and the 5 s of reboot) has those forecasts unscored
    assert report.device("dev0001")["forecast"]["readings"] < clean.device("dev0001")["forecast"]["readings"] - 19
