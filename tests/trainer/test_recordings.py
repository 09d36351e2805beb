"""Labelled recordings as users have them: one label per series, unequal lengths, files sorted by class."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from edgernn.errors import DataError
from tests.trainer import synth
from trainer.data import load
from trainer.fitting import TrainResult, fit
from trainer.prep import prepare
from trainer.recordings import load_tables

QUIET: dict[str, Any] = {"progress": False, "verbose": False}
COLUMNS: dict[str, Any] = {"target": "activity", "series_column": "rec", "time_column": "t"}


def _classes(part: Any) -> set[str]:
    return {str(next(v for v in s.label if v is not None)) for s in part.series}


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    root = tmp_path_factory.mktemp("recordings")
    df = synth.recordings_frame(per_class=20, lengths=(4, 40), seed=1)
    return fit(df, task="classify", out=root / "run", hidden=16, epochs=25, seed=0, **COLUMNS, **QUIET)


def test_a_class_sorted_file_split_by_sequence_has_every_class_in_every_split() -> None:
    df = synth.recordings_frame(per_class=10)
    table, given, whole = load_tables(
        df, val_data=None, test_data=None, train_on="auto", task="classify", per_step=False,
        features=None, **COLUMNS,
    )  # fmt: skip
    assert whole and table.kind == "sequences" and not given
    prep = prepare(table, task="classify", split_by="sequence", seed=3)
    for part in prep.parts():
        assert _classes(part) == set(synth.ACTIVITIES), part.name
    # in proportion: 10 per class at 0.15 / 0.15 -> 2 test, 2 validation, 6 training recordings of each class
    assert [len(p.series) for p in prep.parts()] == [18, 6, 6]
    assert prep.bounds["by"] == "recordings, stratified by class (seed 3)"
    # the seed decides which recordings, and the same seed the same ones
    again = prepare(table, task="classify", split_by="sequence", seed=3)
    other = prepare(table, task="classify", split_by="sequence", seed=4)
    assert prep.bounds["test"] == again.bounds["test"] != other.bounds["test"]
    # file order, when asked for: the last recordings (all of the last class) are the test split
    ordered = prepare(table, task="classify", split_by="sequence", split_order="file")
    assert _classes(ordered.test) == {synth.ACTIVITIES[-1]}


def test_a_recording_shorter_than_any_window_is_classified(whole_run: TrainResult) -> None:
    s = whole_run.summary
    assert s["data"]["kind"] == "sequences" and s["training"]["loss_on"] == "last reading of each recording"
    rec = s["training"]["recordings"]
    assert rec["shortest"] < 8 and rec["longest"] < 40  # the default window is 100: no window would fit
    # every test recording, the shortest included, is scored once: at its last reading, streamed from a reset
    streaming = s["metrics"]["streaming"]
    assert streaming["readings"] == rec["count"]["test"] == 9
    assert streaming["accuracy"] >= 0.85, streaming
    # how early the label becomes right, recorded per tenth of each recording; the whole is the device's answer
    by_fraction = streaming["accuracy_by_fraction"]
    assert list(by_fraction) == [f"{k / 10:.1f}" for k in range(1, 11)]
    assert by_fraction["1.0"] == streaming["accuracy"]
    assert json.loads((Path(s["run_dir"]) / "summary.json").read_text())["metrics"]["streaming"] == streaming


def test_the_small_data_defaults_apply_to_recordings_only(whole_run: TrainResult) -> None:
    from trainer.defaults import DEFAULTS

    t = whole_run.summary["training"]
    small = DEFAULTS["recordings"]
    assert (t["lr"], t["weight_decay"], t["patience"], t["batch_size"]) == (
        small["lr"], small["weight_decay"], small["patience"], small["batch_size"],
    )  # fmt: skip
    assert t["epochs"] == 25  # given, so kept
    # the head reads the running maximum of the recording's outputs (state m on the device)
    assert whole_run.checkpoint.config.readout == small["readout"] == "max"
    # training batches augmented by default (benchmarks/CLASSIFY.md: better on every set measured)
    assert t["augment"] == ["jitter", "scale", "warp", "crop"] and t["lr_schedule"] == "none"


def test_given_files_are_the_splits(tmp_path: Path) -> None:
    train, val, test = (synth.recordings_frame(per_class=n, seed=n) for n in (8, 2, 3))
    test.to_csv(tmp_path / "test.csv", index=False)
    r = fit(train, val_data=val, test_data=tmp_path / "test.csv", task="classify", out=tmp_path / "run", hidden=8,
            epochs=2, **COLUMNS, **QUIET)  # fmt: skip
    assert r.summary["split"]["readings"] == {"train": len(train), "val": len(val), "test": len(test)}
    assert r.summary["training"]["recordings"]["count"] == {"train": 24, "val": 6, "test": 9}
    assert r.checkpoint.provenance["split"]["test"] == f"given: {tmp_path / 'test.csv'} (9 recordings)"
    assert r.checkpoint.provenance["split"]["val"] == "given: DataFrame (6 recordings)"


def test_refusals_name_the_numbers_and_the_flag_that_works(tmp_path: Path) -> None:
    df = synth.recordings_frame(per_class=6, lengths=(4, 40))
    with pytest.raises(DataError) as info:
        fit(df, task="classify", out=tmp_path / "a", train_on="windows", window=50, epochs=1, **COLUMNS, **QUIET)
    msg = str(info.value)
    assert "fewer rows than one window" in msg and "a window needs 50" in msg and "--train-on recordings" in msg
    assert re.search(r"recordings have \d+ to \d+ readings", msg), msg
    # a class with too few recordings for three splits: the count, and two ways out
    few = df[~df["rec"].isin([f"r{i:03d}" for i in range(2, 6)])]
    with pytest.raises(DataError) as info:
        fit(few, task="classify", out=tmp_path / "b", epochs=1, **COLUMNS, **QUIET)
    msg = str(info.value)
    assert "class 'idle' has 2 recording(s)" in msg and "--test-data" in msg and "--split-order file" in msg
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_labelled_streams_still_train_on_windows(motion_df: pd.DataFrame) -> None:
    table = load(motion_df, task="classify", target="activity", features=None, time_column="t", series_column="device")
    _, _, whole = load_tables(
        motion_df, val_data=None, test_data=None, train_on="auto", task="classify", per_step=False,
        features=None, target="activity", time_column="t", series_column="device",
    )  # fmt: skip
    assert table.kind == "streams" and not whole  # a device's label changes: not recordings
    with pytest.raises(DataError, match="series 'dev0' holds 3 labels"):
        load_tables(
            motion_df, val_data=None, test_data=None, train_on="recordings", task="classify", per_step=False,
            features=None, target="activity", time_column="t", series_column="device",
        )  # fmt: skip


def test_recording_loss_every_puts_each_recordings_label_on_all_its_readings() -> None:
    from trainer.windows import window_batches

    table, _, _ = load_tables(
        synth.recordings_frame(per_class=4, lengths=(3, 12)), val_data=None, test_data=None, train_on="auto",
        task="classify", per_step=False, features=None, **COLUMNS,
    )  # fmt: skip
    part = prepare(table, task="classify", split_by="sequence").train
    kw: dict[str, Any] = {"window": 0, "stride": 1, "last_only": False, "sequences": True, "batch_size": 64}
    (last,) = window_batches(part, rng=None, **kw)
    (every,) = window_batches(part, rng=None, spread=True, **kw)
    lengths = [len(x) for x in part.x]
    assert last.mask.sum(axis=1).tolist() == [1] * len(lengths)  # judged at the last reading
    assert every.mask.sum(axis=1).tolist() == lengths  # padding never counts
    for r, n in enumerate(lengths):
        assert (every.y[r, :n] == last.y[r, n - 1]).all() and last.mask[r, n - 1]
