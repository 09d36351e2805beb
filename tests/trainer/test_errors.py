"""Every bad input gets a clear error naming the value and what is allowed, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from edgernn.errors import ConfigError, DataError
from tests.trainer import synth
from trainer.fitting import fit
from trainer.table import Tokens


@pytest.fixture(scope="module")
def small_df() -> pd.DataFrame:
    return synth.motion_frame(devices=2, readings=600, bout=(40, 80), seed=1)


def _fails(tmp_path: Path, error: type[Exception], data: Any, **kw: Any) -> str:
    kw.setdefault("task", "classify")
    kw.setdefault("epochs", 1)
    out = tmp_path / "run"
    with pytest.raises(error) as info:
        fit(data, out=out, progress=False, verbose=False, **kw)
    assert not out.exists(), "a failed run must leave nothing behind"
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    return str(info.value)


def test_missing_column_lists_the_columns_there_are(tmp_path: Path, small_df: pd.DataFrame) -> None:
    msg = _fails(tmp_path, DataError, small_df, target="activty", time_column="t")
    assert "'activty'" in msg and "columns: t, device, ax, ay, az, gx, gy, gz, activity" in msg
    msg = _fails(tmp_path, DataError, small_df, target="activity", time_column="time")
    assert "time column 'time'" in msg and "columns: t, device" in msg
    msg = _fails(tmp_path, DataError, small_df, target="activity", features=["ax", "bx"])
    assert "feature 'bx'" in msg


def test_target_that_does_not_exist(tmp_path: Path) -> None:
    msg = _fails(tmp_path, DataError, synth.periodic_frame(500), task="forecast", target="pressure", time_column="t")
    assert "target 'pressure'" in msg and "columns: t, temp, load" in msg
    x, _ = synth.motion_arrays(20, 10)
    msg = _fails(tmp_path, DataError, (x, None), task="forecast", target="x7")
    assert "target 'x7'" in msg and "features: x0, x1, x2" in msg


def test_non_numeric_feature(tmp_path: Path, small_df: pd.DataFrame) -> None:
    df = small_df.copy()
    df["ay"] = df["ay"].astype(object)
    df.loc[42, "ay"] = "n/a"
    msg = _fails(tmp_path, DataError, df, target="activity", time_column="t", series_column="device")
    assert "feature 'ay' is not numeric" in msg and "'n/a' at row 42" in msg
    # a text column picked up as a feature by default: the message says how to leave it out
    msg = _fails(tmp_path, DataError, small_df, target="activity", time_column="t")
    assert "feature 'device' is not numeric" in msg and "series_column" in msg


def test_nan_and_inf_are_errors_unless_dropped(tmp_path: Path, small_df: pd.DataFrame) -> None:
    df = small_df.copy()
    df.loc[[3, 7], "gx"] = np.nan
    df.loc[11, "az"] = -np.inf
    msg = _fails(tmp_path, DataError, df, target="activity", time_column="t", series_column="device")
    assert "column 'gx' has 2 NaN/inf values (first at row 3)" in msg
    assert "column 'az' has 1 NaN/inf values (first at row 11)" in msg
    assert "drop_nan=True" in msg and "--drop-nan" in msg
    result = fit(
        df,
        task="classify",
        target="activity",
        time_column="t",
        series_column="device",
        drop_nan=True,
        out=tmp_path / "ok",
        hidden=8,
        window=20,
        epochs=1,
        progress=False,
        verbose=False,
    )
    assert result.summary["data"]["dropped_rows"] == 3
    assert result.summary["data"]["readings"] == len(df) - 3


def test_fewer_rows_than_one_window(tmp_path: Path, small_df: pd.DataFrame) -> None:
    msg = _fails(
        tmp_path, DataError, small_df.iloc[:250], target="activity", time_column="t", series_column="device", window=100
    )
    assert "fewer rows than one window" in msg and "a window needs 100" in msg and "--window" in msg


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("cell", "transformer", "supported: rnn, lstm, gru"),
        ("task", "regress", "supported: classify, forecast, anomaly, generate"),
        ("mode", "online", "supported: windows, stateful"),
        ("scaler", "robust", "supported: standard, minmax"),
        ("device", "tpu", "supported: auto, cpu, cuda"),
    ],
)
def test_unknown_choice_names_what_is_allowed(
    tmp_path: Path, small_df: pd.DataFrame, option: str, value: str, allowed: str
) -> None:
    kw: dict[str, Any] = {"target": "activity", "time_column": "t", "series_column": "device", option: value}
    msg = _fails(tmp_path, ConfigError, small_df, **kw)
    assert repr(value) in msg and allowed in msg


def test_class_seen_only_in_test_is_an_error_naming_it(tmp_path: Path, small_df: pd.DataFrame) -> None:
    df = small_df.copy()
    last = df.index[(df.device == "dev1")][-20:]
    df.loc[last, "activity"] = "jump"
    msg = _fails(tmp_path, DataError, df, target="activity", time_column="t", series_column="device", window=20)
    assert "class 'jump' appears only in the test split (series 'dev1')" in msg
    assert "classes in training: idle, run, walk" in msg


def test_cuda_requested_without_cuda(tmp_path: Path, small_df: pd.DataFrame) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    msg = _fails(tmp_path, ConfigError, small_df, target="activity", device="cuda")
    assert "device 'cuda'" in msg and "not available" in msg and "'cpu' or 'auto'" in msg


def test_other_bad_options(tmp_path: Path, small_df: pd.DataFrame) -> None:
    kw = {"target": "activity", "time_column": "t", "series_column": "device"}
    assert "clip must be > 0" in _fails(tmp_path, ConfigError, small_df, clip=0.0, **kw)
    assert "cannot carry state" in _fails(tmp_path, ConfigError, small_df, mode="stateful", bidirectional=True, **kw)
    assert "exactly one label column" in _fails(tmp_path, ConfigError, small_df, target=["activity", "ax"])
    msg = _fails(tmp_path, ConfigError, Tokens.from_text("abc"), task="forecast")
    assert "token input supports tasks generate and classify" in msg
    x, y = synth.motion_arrays(30, 20, unequal=True)
    msg = _fails(tmp_path, ConfigError, (x, y), bidirectional=True)
    assert "over exactly one window length" in msg and "lengths 10..20" in msg
    msg = _fails(tmp_path, ConfigError, small_df, task="anomaly", target="gx", features=["ax", "ay"])
    assert "anomaly targets ['gx'] must also be input features" in msg


def test_out_that_is_not_a_run_directory_is_left_alone(tmp_path: Path, small_df: pd.DataFrame) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not a run directory"):
        fit(small_df, task="classify", target="activity", out=out, progress=False, verbose=False)
    assert (out / "notes.txt").read_text() == "keep me"
