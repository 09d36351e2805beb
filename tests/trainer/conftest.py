"""Session-scoped training runs shared by the trainer tests (small models, few epochs, synthetic data)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from tests.trainer import synth
from trainer.fitting import TrainResult, fit
from trainer.table import Tokens

QUIET: dict[str, Any] = {"progress": False, "verbose": False}


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and the CI box is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def motion_df() -> pd.DataFrame:
    return synth.motion_frame(devices=3, readings=2000, seed=0)


@pytest.fixture(scope="session")
def motion_csv(tmp_path_factory: pytest.TempPathFactory, motion_df: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("data") / "readings.csv"
    motion_df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def forecast_run(runs_dir: Path) -> TrainResult:
    return fit(
        synth.periodic_frame(3000, seed=1),
        task="forecast",
        target="temp",
        time_column="t",
        out=runs_dir / "forecast",
        cell="lstm",
        hidden=24,
        window=40,
        horizon=4,
        epochs=15,
        batch_size=16,
        **QUIET,
    )


@pytest.fixture(scope="session")
def anomaly_run(runs_dir: Path) -> TrainResult:
    return fit(
        synth.spikes_frame(4000, rate=0.02, size=2.0, seed=2),
        task="anomaly",
        target="temp",
        features=["temp", "load"],
        time_column="t",
        anomaly_column="anomaly",
        out=runs_dir / "anomaly",
        cell="gru",
        hidden=16,
        window=20,
        mode="stateful",
        batch_size=8,
        epochs=10,
        **QUIET,
    )


@pytest.fixture(scope="session")
def char_run(runs_dir: Path) -> TrainResult:
    return fit(
        Tokens.from_text(synth.TEXT),
        task="generate",
        out=runs_dir / "chars",
        cell="lstm",
        hidden=48,
        window=32,
        epochs=10,
        batch_size=16,
        **QUIET,
    )


@dataclass
class CliRun:
    rc: int
    stdout: str
    run_dir: Path


@pytest.fixture(scope="session")
def motion_cli_run(runs_dir: Path, motion_csv: Path) -> CliRun:
    """The issue's command line, end to end on a CSV (3 devices, 3 activities, 50 readings/s)."""
    from edgernn.cli import main

    out = runs_dir / "imu"
    argv = [
        "train", "--data", str(motion_csv), "--time-column", "t", "--series-column", "device",
        "--target", "activity", "--task", "classify", "--cell", "gru", "--hidden", "24", "--layers", "2",
        "--window", "50", "--epochs", "8", "--batch-size", "32", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return CliRun(rc, buf.getvalue(), out)
