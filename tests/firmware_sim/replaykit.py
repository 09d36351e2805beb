"""What the replay tests share: a bundle trained and exported through the CLI on one torch thread, a fleet
spec on the numpy backend, and the numpy-fp32 quality figure `edgernn inspect` prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware_sim.profiles import get_profile
from firmware_sim.scenario import FleetSpec


def train_and_export(train_args: list[str], root: Path) -> Path:
    """`edgernn train ARGS --out root/run` then a numpy-only export to root/bundle; returns the bundle."""
    torch = pytest.importorskip("torch")
    from edgernn.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads contend on a busy 2-core machine and train ~10x slower
    try:
        assert main(["train", *train_args, "--out", str(root / "run")]) == 0
        assert main(["export", str(root / "run"), "--out", str(root / "bundle"), "--formats", "numpy"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "bundle"


def fleet_spec(bundle: Path, devices: int, signal: str | None = None, **params: object) -> FleetSpec:
    return FleetSpec(
        bundle=bundle, devices=devices, profile=get_profile("pi-4"), signal=signal, signal_params=dict(params),
        backend="numpy",
    )  # fmt: skip


def inspect_numpy_figure(bundle: Path, capsys: pytest.CaptureFixture[str]) -> tuple[float, str]:
    """The first figure of the numpy-fp32 row of `edgernn inspect`'s quality table (accuracy or MAE), and
    the whole output."""
    from edgernn.cli import main

    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^numpy-fp32\s+\S+\s+[\d.]+ \S+\s+([\d.]+)", out, re.M)
    assert row is not None, out
    return float(row.group(1)), out
