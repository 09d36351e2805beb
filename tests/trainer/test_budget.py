"""`--max-train-seconds`: a wall-clock budget for the epochs, for a busy laptop (the demo trains under one).

Training stops before an epoch that would end past the budget, keeps the best epoch so far and says so in one
line; the run directory is complete either way.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from edgernn.cli import main
from trainer import epochs, fitting
from trainer.checkpoint import load_checkpoint

SMALL = ["--time-column", "t", "--series-column", "device", "--target", "activity", "--task", "classify",
         "--hidden", "8", "--window", "20", "--no-progress"]  # fmt: skip


def test_a_tiny_budget_stops_after_the_first_epoch_and_says_so(tmp_path: Path, motion_csv: Path) -> None:
    out = tmp_path / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["train", "--data", str(motion_csv), *SMALL, "--epochs", "5", "--max-train-seconds", "0.001",
                   "--out", str(out)])  # fmt: skip
    assert rc == 0
    said = [line for line in buf.getvalue().splitlines() if line.startswith("time budget:")]
    assert len(said) == 1, buf.getvalue()
    assert said[0].startswith("time budget: stopped after epoch 1 of 5,") and "of 0.001 s" in said[0]
    assert "kept epoch 1, the best so far (validation loss " in said[0]
    assert "stopped by the time budget" in buf.getvalue()  # the summary's first line too
    summary = json.loads((out / "summary.json").read_text())
    t = summary["training"]
    assert (t["epochs_run"], t["best_epoch"], t["stopped_by_time_budget"]) == (1, 1, True)
    assert t["max_train_seconds"] == 0.001
    assert len(summary["history"]) == 1
    # the run is whole: a checkpoint with the metrics of the epoch it kept
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.training["stopped_by_time_budget"] is True and "accuracy" in ckpt.metrics["streaming"]


def test_a_budget_keeps_the_best_epoch_so_far(tmp_path: Path, motion_df: pd.DataFrame, monkeypatch: Any) -> None:
    """Each epoch 'takes' 10 s on a fake clock: a 45 s budget runs 4 epochs (a 5th would end at 50 s), and the
    checkpoint holds the weights of the best of those 3 by validation loss, not the last one's."""
    clock = [0.0]
    weights: list[dict[str, torch.Tensor]] = []  # the model's weights after each epoch
    real = epochs.run_epoch

    def timed_epoch(model: Any, *args: Any, **kwargs: Any) -> Any:
        stats = real(model, *args, **kwargs)
        clock[0] += 5.0  # training pass, then validation pass: 10 s an epoch
        if kwargs.get("optimizer") is None:
            weights.append(copy.deepcopy(model.state_dict()))
        return stats

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    monkeypatch.setattr(epochs, "run_epoch", timed_epoch)  # the epochs loop lives in trainer.epochs
    monkeypatch.setattr(epochs, "time", FakeTime)
    monkeypatch.setattr(fitting, "time", FakeTime)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = fitting.fit(
            motion_df, task="classify", target="activity", time_column="t", series_column="device", hidden=8,
            window=20, epochs=10, patience=100, lr=0.2, out=tmp_path / "run", progress=False,
            max_train_seconds=45,
        )  # fmt: skip
    assert len(result.history) == 4 == len(weights)
    assert "time budget: stopped after epoch 4 of 10, 40.0 s of 45 s (an epoch takes 10.0 s)" in buf.getvalue()
    val = [h["val_loss"] for h in result.history]
    best = val.index(min(val)) + 1
    assert best < 4, val  # a high learning rate: validation loss jumps about, the last epoch is not the best
    assert result.summary["training"]["best_epoch"] == best
    assert f"kept epoch {best}, the best so far (validation loss {min(val):.4g})" in buf.getvalue()
    kept = load_checkpoint(result.run_dir / "checkpoint.pt").state_dict
    assert all(torch.equal(kept[k], weights[best - 1][k]) for k in kept)


def test_no_message_when_the_budget_is_not_reached(tmp_path: Path, motion_df: pd.DataFrame) -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = fitting.fit(
            motion_df, task="classify", target="activity", time_column="t", series_column="device", hidden=8,
            window=20, epochs=2, out=tmp_path / "run", progress=False, max_train_seconds=3600,
        )  # fmt: skip
    assert len(result.history) == 2 and "time budget" not in buf.getvalue()
    assert result.summary["training"]["stopped_by_time_budget"] is False


@pytest.mark.parametrize("bad", ["0", "-5", "nan"])
def test_a_bad_budget_is_one_line(tmp_path: Path, motion_csv: Path, bad: str, capsys: Any) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--data", str(motion_csv), *SMALL, "--max-train-seconds", bad, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert f"max_train_seconds must be > 0 seconds, got {float(bad)!r}" in err and not out.exists()
