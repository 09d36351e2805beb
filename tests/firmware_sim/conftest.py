"""A small IMU activity bundle, trained once per session on the simulator's own data (numpy only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.signals import imu_dataset

IMU_RATE = 20.0


@pytest.fixture(scope="session")
def imu_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """GRU 1x16 trained with `trainer.fit` on 8 simulated wearers x 2 min at 20 Hz; exported numpy-only.

    One torch thread: on a busy 2-core machine two threads contend and training runs ~10x slower.
    """
    torch = pytest.importorskip("torch")
    from exporter import export_bundle
    from trainer.fit import fit

    root = tmp_path_factory.mktemp("imu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df = imu_dataset(devices=8, duration_s=120, rate=IMU_RATE, seed=0)
        result = fit(
            df, task="classify", target="activity", out=root / "run", time_column="t", series_column="device",
            cell="gru", hidden=16, window=20, stride=4, epochs=10, batch_size=32, lr=1e-2, seed=0,
            progress=False, verbose=False,
        )  # fmt: skip
        export_bundle(result.run_dir, root / "bundle", formats=("numpy",), progress=False)
    finally:
        torch.set_num_threads(threads)
    yield root / "bundle"
