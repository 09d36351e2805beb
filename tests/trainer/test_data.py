"""Data: the time-ordered split, the scaler fit on training data only, labels, tokens, sample rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.trainer import synth
from trainer.data import load
from trainer.prep import prepare
from trainer.table import Tokens


def _prepared(df: pd.DataFrame, scaler: str = "standard"):
    table = load(df, task="classify", target="activity", features=None, time_column="t", series_column="device")
    return prepare(table, task="classify", scaler=scaler)


def test_split_is_by_time_within_each_series(motion_df: pd.DataFrame) -> None:
    shuffled = motion_df.sample(frac=1.0, random_state=0)  # rows out of order: the loader sorts by time
    prep = _prepared(shuffled)
    assert sorted(s.name for s in prep.train.series) == ["dev0", "dev1", "dev2"]
    for name in ("dev0", "dev1", "dev2"):
        t = {p.name: next(s.t for s in p.series if s.name == name) for p in prep.parts()}
        assert (np.diff(t["train"]) > 0).all() and (np.diff(t["test"]) > 0).all()
        assert t["train"].max() < t["val"].min() <= t["val"].max() < t["test"].min()
        assert len(t["train"]) == 1400 and len(t["val"]) == 300 and len(t["test"]) == 300
        bounds = prep.bounds[name]
        assert bounds["train"][1] < bounds["test"][0]
        assert bounds["test"] == [float(t["test"][0]), float(t["test"][-1])]
    assert prep.bounds["by"] == "time, per series"


def test_no_test_timestamp_precedes_a_training_one_in_a_fitted_run(forecast_run) -> None:
    split = forecast_run.checkpoint.provenance["split"]
    for series, parts in split.items():
        if series == "by":
            continue
        assert parts["train"][1] < parts["val"][0] <= parts["val"][1] < parts["test"][0], parts


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_scaler_statistics_are_the_training_splits(motion_df: pd.DataFrame, kind: str) -> None:
    prep = _prepared(motion_df, kind)
    cols = ["ax", "ay", "az", "gx", "gy", "gz"]
    train_rows = pd.concat(g.sort_values("t").iloc[:1400] for _, g in motion_df.groupby("device"))[cols].to_numpy()
    # readings are kept as float32, so the statistics agree to float32 precision
    if kind == "standard":
        np.testing.assert_allclose(prep.scaler.offset, train_rows.mean(axis=0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(prep.scaler.scale, train_rows.std(axis=0), rtol=1e-6)
    else:
        np.testing.assert_allclose(prep.scaler.offset, train_rows.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(prep.scaler.scale, np.ptp(train_rows, axis=0), rtol=1e-6)
    np.testing.assert_allclose(prep.ranges["min"], train_rows.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(prep.ranges["max"], train_rows.max(axis=0), rtol=1e-6)
    # the whole data set has other statistics: the test split did not leak into the scaler
    assert not np.allclose(
        prep.scaler.offset,
        motion_df[cols].to_numpy().mean(axis=0) if kind == "standard" else motion_df[cols].to_numpy().min(axis=0),
        rtol=1e-6,
    )
    # applied unchanged to the test split
    test_raw = prep.test.series[0].x
    np.testing.assert_allclose(
        prep.test.x[0], (test_raw - np.float32(prep.scaler.offset)) / np.float32(prep.scaler.scale), rtol=1e-5
    )


def test_labels_sample_rate_and_features_are_recorded(motion_df: pd.DataFrame) -> None:
    prep = _prepared(motion_df)
    assert prep.labels == ["idle", "run", "walk"]
    assert prep.table.features == ["ax", "ay", "az", "gx", "gy", "gz"]
    assert prep.table.sample_rate == pytest.approx(synth.RATE)
    assert prep.output_size == 3


def test_timestamps_as_strings_give_the_sample_rate() -> None:
    df = synth.periodic_frame(300)
    df["t"] = pd.to_datetime(df["t"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    table = load(df, task="forecast", target="temp", features=None, time_column="t", series_column=None)
    assert table.sample_rate == pytest.approx(50.0)
    assert table.features == ["temp", "load"] and table.targets == ["temp"]


def test_forecast_targets_never_reach_across_the_split() -> None:
    df = synth.periodic_frame(1000)
    table = load(df, task="forecast", target="temp", features=None, time_column="t", series_column=None)
    prep = prepare(table, task="forecast", horizon=3)
    y = prep.train.y_raw[0]  # (L, 3): temp at t+1, t+2, t+3
    target = prep.train.series[0].target
    assert target is not None
    temp = target[:, 0]
    np.testing.assert_allclose(y[:-3, 0], temp[1:-2])
    np.testing.assert_allclose(y[:-3, 2], temp[3:])
    assert np.isnan(y[-1]).all() and np.isnan(y[-3:, 2]).all() and not np.isnan(y[-3, 0])


def test_arrays_of_unequal_sequences_split_in_order() -> None:
    x, y = synth.motion_arrays(40, 20, unequal=True)
    table = load((x, y), task="classify", target=None, features=None, time_column=None, series_column=None)
    assert table.kind == "sequences" and table.features == ["x0", "x1", "x2"]
    prep = prepare(table, task="classify", split_by="sequence", split_order="file")
    assert [s.name for s in prep.test.series] == [str(i) for i in range(34, 40)]
    # a many-to-one label sits on the last reading only
    y0 = prep.train.y[0]
    assert (y0[:-1] == -1).all() and y0[-1] == int(y[0])


def test_tokens_from_text_and_vocabulary() -> None:
    table = load(
        Tokens.from_text("abcab"), task="generate", target=None, features=None, time_column=None, series_column=None
    )
    assert table.vocabulary == ["a", "b", "c"] and table.tokens
    np.testing.assert_array_equal(table.series[0].x, [0, 1, 2, 0, 1])


def test_drop_nan_drops_and_counts(motion_df: pd.DataFrame) -> None:
    df = motion_df.copy()
    df.loc[[5, 17, 4000], "ax"] = np.nan
    df.loc[9, "gz"] = np.inf
    table = load(
        df, task="classify", target="activity", features=None, time_column="t", series_column="device", drop_nan=True
    )
    assert table.dropped_rows == 4
    assert table.readings == len(df) - 4
    assert all(np.isfinite(s.x).all() for s in table.series)


@pytest.mark.parametrize(("task", "kind"), [("forecast", "standard"), ("forecast", "minmax"), ("anomaly", "standard")])
def test_target_scaler_statistics_are_the_training_splits(task: str, kind: str) -> None:
    """The forecast/anomaly target scaler, like the input scaler, sees only the training split (a trending
    target makes the whole data set's statistics differ), and scales every split's training targets."""
    frames = []
    for dev in range(2):
        f = synth.periodic_frame(500, seed=dev)
        f["temp"] += 0.02 * np.arange(500) + 5 * dev  # a drift: later readings run warmer
        f["device"] = f"dev{dev}"
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    table = load(df, task=task, target="temp", features=None, time_column="t", series_column="device")
    prep = prepare(table, task=task, scaler=kind)
    assert prep.target_scaler is not None
    train_temp = np.concatenate([g["temp"].to_numpy()[:350] for _, g in df.groupby("device")])  # 70 % of 500 each
    whole = df["temp"].to_numpy()
    if kind == "standard":
        want, leak = (train_temp.mean(), train_temp.std()), (whole.mean(), whole.std())
    else:
        want, leak = (train_temp.min(), np.ptp(train_temp)), (whole.min(), np.ptp(whole))
    np.testing.assert_allclose([prep.target_scaler.offset[0], prep.target_scaler.scale[0]], want, rtol=1e-5)
    assert not np.allclose([prep.target_scaler.offset[0], prep.target_scaler.scale[0]], leak, rtol=1e-3)
    for part in prep.parts():  # every split's targets scaled with the training statistics
        y_raw, y = part.y_raw[0], part.y[0]
        ok = np.isfinite(y)
        np.testing.assert_allclose(y[ok], ((y_raw - want[0]) / want[1])[ok], rtol=1e-4, atol=1e-5)
