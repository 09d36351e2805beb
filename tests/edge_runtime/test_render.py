"""`render_batch` writes the same bytes as `Prediction.to_json`, for every task and every odd value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime.stream import jsontext
from edge_runtime.stream.batch import PredictionBatch
from edge_runtime.stream.predictor import Predictor
from edge_runtime.stream.render import RenderedPrediction, render_batch

from .conftest import make_model, numpy_bundle


@pytest.fixture(autouse=True, params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test with both encoders of the wire format (`edge_runtime.stream.jsontext`)."""
    if request.param == "stdlib":
        monkeypatch.setattr(jsontext, "orjson", None)
    elif jsontext.orjson is None:
        pytest.skip("orjson is not installed")


def _slow(batch: PredictionBatch, i: int, seq: int, latency: float | None) -> bytes:
    pred = batch[i]
    assert pred is not None
    if latency is not None:
        pred.latency_us = latency
    pred.seq = seq
    return pred.to_json().encode()


def _check(batch: PredictionBatch, latency: np.ndarray | None = None) -> list[RenderedPrediction]:
    entries = np.flatnonzero(batch.rows >= 0)
    rendered = render_batch(batch, entries, latency)
    assert len(rendered) == len(entries)
    for j, (i, r) in enumerate(zip(entries.tolist(), rendered, strict=True)):
        lat = None if latency is None else float(latency[j])
        assert r.stream == batch.stream_ids[i]
        assert r.payload(1000 + j) == _slow(batch, i, 1000 + j, lat), f"entry {i}"
    return rendered


def _batch(rng: np.random.Generator, n: int, o: int, **kw: Any) -> PredictionBatch:
    rows = np.arange(n)
    rows[::4] = -1  # some readings made no prediction
    made = rows >= 0
    rows[made] = np.arange(made.sum())
    m = int(made.sum())
    values = rng.random((m, o)).astype(np.float32)
    return PredictionBatch(
        [f"dev{i:04d}" for i in range(n)],
        rows,
        1.7e9 + rng.random(m) * 1000,
        values,
        latency_us=123.456789,
        model="0123456789ab",
        **kw,
    )


def test_classify_with_labels_probability_flags_and_warmup() -> None:
    rng = np.random.default_rng(0)
    b = _batch(rng, 40, 3, label_index=None)
    b.label_index = b.values.argmax(axis=1)
    b.labels = ["walk", "run", 'sit "quoted" \u00e9']
    b.probability = b.values.max(axis=1)
    b.warming = np.arange(len(b.values)) % 3 == 0
    b.flags = {1: ["imputed:ax"], 2: ["state_reset", "gap"]}
    rendered = _check(b, latency=rng.random(30) * 500)
    first = json.loads(rendered[0].payload(7))
    assert first["seq"] == 7 and first["label"] in b.labels and "warming_up" in first["flags"]


def test_classify_without_probability_array_and_unnamed_labels() -> None:
    rng = np.random.default_rng(1)
    b = _batch(rng, 9, 4)
    b.label_index = b.values.argmax(axis=1)
    _check(b)


@pytest.mark.parametrize("o", [1, 3])
def test_forecast_intervals(o: int) -> None:
    rng = np.random.default_rng(2)
    b = _batch(rng, 12, o, half_width=[0.25 * (k + 1) for k in range(o)])
    _check(b)


def test_anomaly_scores_missing_finite_and_infinite() -> None:
    rng = np.random.default_rng(3)
    b = _batch(rng, 20, 2, threshold=0.5)
    score = rng.random(len(b.values))
    score[[0, 5]] = np.nan  # no forecast yet: no score in the payload
    score[7] = np.inf  # not a JSON number: taken through Prediction, written as null
    b.anomaly = score
    rendered = _check(b)
    assert "anomaly" not in json.loads(rendered[0].payload(1))
    assert json.loads(rendered[1].payload(1))["is_anomaly"] == (score[1] >= 0.5)


def test_non_finite_values_take_the_prediction_path() -> None:
    rng = np.random.default_rng(4)
    b = _batch(rng, 8, 3, half_width=[1.0, 1.0, 1.0])
    b.values[1, 2] = np.nan
    b.values[3, 0] = -np.inf
    rendered = _check(b)
    values = json.loads(rendered[1].payload(1))["values"]  # valid JSON: a NaN is null
    assert values[2] is None and values[:2] == b.values[1, :2].tolist()


def test_an_entry_without_a_prediction_is_refused() -> None:
    b = _batch(np.random.default_rng(5), 8, 3)
    with pytest.raises(ValueError, match="without a prediction"):
        render_batch(b, np.array([0]))


def test_a_real_step_many_batch(tmp_path: Path) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model(cell="lstm"), warmup=2)
    p = Predictor.load(bundle, backend="numpy")
    ids = [f"s{i}" for i in range(16)]
    rng = np.random.default_rng(6)
    for k in range(4):
        batch = p.step_many(rng.normal(size=(16, 4)), ids, t=1000.0 + k)
        _check(batch, latency=np.linspace(10.0, 99.5, int((batch.rows >= 0).sum())))
    p.close()
