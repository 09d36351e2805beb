"""A replayed CSV whose time column counts from the recording's start: predictions carry epoch seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from edgernn.cli import main
from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE, make_model, numpy_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("replay") / "b", make_model(cell="gru"), warmup=2)


def _relative_csv(path: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    rows = ["time," + ",".join(FEATURES)]
    rows += [f"{i * 0.05:.2f}," + ",".join(f"{v:.4f}" for v in rng.normal(OFFSET, SCALE)) for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _run(bundle: Path, csv: Path, state: Path, capsys) -> list[dict]:
    args = ["run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy", "--state-dir", str(state)]
    assert main([*args, "--rate", "recorded"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_relative_time_becomes_epoch_seconds_and_a_restart_goes_on(bundle, tmp_path, capsys):
    csv = _relative_csv(tmp_path / "rel.csv", 6)  # 0.00 .. 0.25 s
    before = time.time()
    first = _run(bundle, csv, tmp_path / "state", capsys)
    assert len(first) == 6
    assert before - 1 <= first[0]["time"] <= time.time()  # epoch seconds, not 0.0
    assert np.diff([p["time"] for p in first]) == pytest.approx([0.05] * 5, abs=1e-6)  # the recorded spacing
    again = _run(bundle, csv, tmp_path / "state", capsys)  # the same replay, restarted with its saved state
    assert len(again) == 6 and again[0]["time"] > first[-1]["time"]  # time goes on: nothing "backwards"
    assert not any("backwards" in str(p["flags"]) for p in again)
