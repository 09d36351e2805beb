"""`fit(ensemble=K)` / `edgernn train --ensemble K`: K networks trained on one split and shipped as one, which
the device runs as the training report says; K = 1 is exactly the single network."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from edgernn.errors import ConfigError
from exporter import export_bundle
from tests.trainer import synth
from trainer.checkpoint import load_checkpoint
from trainer.fitting import TrainResult, fit
from trainer.report import summary_text


@pytest.fixture(scope="module")
def recordings() -> pd.DataFrame:
    return synth.recordings_frame(per_class=8, lengths=(6, 30), seed=3)


def _fit(df: pd.DataFrame, out: Path, **kw: object) -> TrainResult:
    return fit(
        df, task="classify", target="activity", series_column="rec", time_column="t", out=out, hidden=8,
        progress=False, verbose=False, **{"epochs": 5, **kw},  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
def ensemble_run(recordings: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return _fit(recordings, tmp_path_factory.mktemp("ens") / "run", ensemble=3)


def test_an_ensemble_ships_as_one_wider_network_and_the_report_says_so(ensemble_run: TrainResult) -> None:
    ckpt = load_checkpoint(ensemble_run.run_dir / "checkpoint.pt")
    assert ckpt.config.hidden_size == 24  # 3 networks of 8
    training = ensemble_run.summary["training"]
    assert training["ensemble"] == 3
    members = training["ensemble_members"]
    assert [m["seed"] for m in members] == [0, 1, 2]
    assert all(1 <= m["best_epoch"] <= m["epochs_run"] <= 5 for m in members)
    assert len({m["val_loss"] for m in members}) == 3  # three different networks
    # each network's validation curve (curve.png draws them); the first is the run's history
    assert [len(m["val_curve"]) for m in members] == [m["epochs_run"] for m in members]
    assert members[0]["val_curve"] == pytest.approx([h["val_loss"] for h in ensemble_run.history])
    assert (ensemble_run.run_dir / "curve.png").stat().st_size > 10_000
    text = summary_text(ensemble_run.summary)
    assert "ensemble of 3 networks run as one (their mean)" in text
    assert "gru 1x24 classify" in text


def test_the_device_scores_the_ensemble_as_the_training_report_does(ensemble_run: TrainResult, tmp_path: Path) -> None:
    manifest = export_bundle(ensemble_run.run_dir, tmp_path / "bundle", formats="numpy", progress=False)
    trained = ensemble_run.summary["metrics"]["streaming"]
    assert manifest.model.hidden_size == 24
    assert manifest.quality["numpy-fp32"]["accuracy"] == pytest.approx(trained["accuracy"])
    assert manifest.quality["numpy-int8"]["readings"] == trained["readings"]


def test_whole_recordings_default_to_three_networks_and_streams_to_one(
    recordings: pd.DataFrame, tmp_path: Path, motion_df: pd.DataFrame
) -> None:
    whole = _fit(recordings, tmp_path / "whole", epochs=1)
    assert whole.summary["training"]["ensemble"] == 3 and whole.checkpoint.config.hidden_size == 24
    streams = fit(
        motion_df, task="classify", target="activity", time_column="t", series_column="device", hidden=8,
        window=20, epochs=1, out=tmp_path / "streams", progress=False, verbose=False,
    )  # fmt: skip
    assert streams.summary["training"]["ensemble"] == 1 and streams.checkpoint.config.hidden_size == 8
    assert "ensemble_members" not in streams.summary["training"]


def test_the_first_member_is_the_single_run_and_the_rest_differ(
    recordings: pd.DataFrame, ensemble_run: TrainResult, tmp_path: Path
) -> None:
    """Member 1 of the merged network is the seed's single run: its block of weights is that run's."""
    alone = _fit(recordings, tmp_path / "alone", ensemble=1)
    merged = ensemble_run.checkpoint.state_dict
    w = merged["rnn.weight_hh_l0"]  # (3 gates * 24, 24): member 0's block at rows g*24 + 0..7, columns 0..7
    for g in range(3):
        first = alone.checkpoint.state_dict["rnn.weight_hh_l0"][g * 8 : (g + 1) * 8]  # (8, 8)
        torch.testing.assert_close(w[g * 24 : g * 24 + 8, :8], first, rtol=0, atol=0)
        assert not torch.equal(w[g * 24 + 8 : g * 24 + 16, 8:16], w[g * 24 : g * 24 + 8, :8])
        assert torch.count_nonzero(w[g * 24 : g * 24 + 8, 8:]) == 0  # members never read each other


@pytest.mark.parametrize(("kw", "message"), [
    ({"ensemble": 0}, "ensemble must be an integer >= 1, got 0"),
    ({"ensemble": 2, "bidirectional": True, "split_by": "sequence", "train_on": "windows", "window": 4},
     "drop --bidirectional"),
])  # fmt: skip
def test_bad_ensemble_is_refused_in_one_line(
    recordings: pd.DataFrame, tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _fit(recordings, tmp_path / "run", **kw)
    assert not (tmp_path / "run").exists()


def test_the_cli_trains_an_ensemble_and_refuses_a_bad_count(
    recordings: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgernn.cli import main

    csv = tmp_path / "rec.csv"
    recordings.to_csv(csv, index=False)
    base = ["train", "--data", str(csv), "--task", "classify", "--target", "activity", "--series-column", "rec",
            "--time-column", "t", "--hidden", "4", "--epochs", "2", "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "bad"), "--ensemble", "0"]) == 2
    assert "edgernn train: error: ensemble must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "run"), "--ensemble", "2"]) == 0
    out = capsys.readouterr().out
    assert "gru 1x8 classify" in out and "ensemble of 2 networks run as one" in out


def test_a_time_budget_is_shared_by_the_networks_and_each_stop_is_named(
    recordings: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each epoch 'takes' 10 s on a fake clock (5 s training, 5 s validation): 90 s for three networks is 30 s
    each, so each runs 3 epochs (a 4th would end past 30 s) and the summary says which network stopped where."""
    from trainer import epochs, fitting

    clock = [0.0]
    real = epochs.run_epoch

    def timed_epoch(*args: object, **kwargs: object) -> object:
        clock[0] += 5.0
        return real(*args, **kwargs)  # type: ignore[arg-type]

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    monkeypatch.setattr(epochs, "run_epoch", timed_epoch)
    monkeypatch.setattr(epochs, "time", FakeTime)
    monkeypatch.setattr(fitting, "time", FakeTime)
    run = fit(
        recordings, task="classify", target="activity", series_column="rec", time_column="t", out=tmp_path / "run",
        hidden=8, epochs=10, patience=100, max_train_seconds=90, progress=False, verbose=True,
    )  # fmt: skip
    assert [m["epochs_run"] for m in run.summary["training"]["ensemble_members"]] == [3, 3, 3]
    assert run.summary["training"]["stopped_by_time_budget"] is True
    out = capsys.readouterr().out
    for i in (1, 2, 3):
        assert f"network {i} of 3: time budget: stopped after epoch 3 of 10, 30.0 s of 30 s" in out
