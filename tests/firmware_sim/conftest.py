"""A small IMU activity bundle, trained once per session on the simulator's own data (numpy only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.signals import imu_dataset

IMU_RATE = 20.0


def train_imu_bundle(root: Path, **fit_args: Any) -> Path:
    """An IMU activity bundle trained with `trainer.fit` on 8 simulated wearers x 2 min at 20 Hz (`fit_args`
    over the defaults below); exported numpy-only into root/bundle.

    One torch thread: on a busy 2-core machine two threads contend and training runs ~10x slower.
    """
    torch = pytest.importorskip("torch")
    from exporter import export_bundle
    from trainer.fitting import fit

    args: dict[str, Any] = {
        "cell": "gru", "hidden": 16, "window": 20, "stride": 4, "epochs": 10, "batch_size": 32, "lr": 1e-2, "seed": 0,
    }  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df = imu_dataset(devices=8, duration_s=120, rate=IMU_RATE, seed=0)
        result = fit(
            df, task="classify", target="activity", out=root / "run", time_column="t", series_column="device",
            progress=False, verbose=False, **(args | fit_args),
        )  # fmt: skip
        export_bundle(result.run_dir, root / "bundle", formats=("numpy",), progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "bundle"


@pytest.fixture(scope="session")
def imu_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """GRU 1x16, 10 epochs (`train_imu_bundle`)."""
    yield train_imu_bundle(tmp_path_factory.mktemp("imu"))


COLD_PARAMS = {"excursion_every_s": 600.0}  # a door left open every ~10 minutes: many episodes in a short run


@pytest.fixture(scope="session")
def cold_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Cold-room anomaly model (forecast-residual score on temp) from 4 rooms x 40 min at 1 Hz; numpy only."""
    torch = pytest.importorskip("torch")
    from exporter import export_bundle
    from firmware_sim.signals import temperature_dataset
    from trainer.fitting import fit

    root = tmp_path_factory.mktemp("cold")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df = temperature_dataset(devices=4, duration_s=2400, rate=1.0, seed=0, **COLD_PARAMS)
        result = fit(
            df, task="anomaly", target=["temp"], features=["temp", "humidity", "power"], out=root / "run",
            time_column="t", series_column="device", anomaly_column="anomaly", cell="gru", hidden=12, window=20,
            stride=2, epochs=6, batch_size=32, lr=1e-2, seed=0, progress=False, verbose=False,
        )  # fmt: skip
        export_bundle(result.run_dir, root / "bundle", formats=("numpy",), progress=False)
    finally:
        torch.set_num_threads(threads)
    yield root / "bundle"
