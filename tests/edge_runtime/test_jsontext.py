"""The wire format's encoder writes the same JSON with orjson and with the standard library."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge_runtime.stream import jsontext
from edge_runtime.stream.prediction import Prediction


def _pred() -> Prediction:
    """A fresh prediction per test: `payload` sets seq on the object it serialises."""
    return Prediction(
        seq=41,
        time=1764000000.125,
        stream="dév-1",
        values=[0.12345679104328156, 0.8234567910432816, 1.5e16],
        label="walk",
        probability=0.8234567910432816,
        latency_us=254.32,
        model="0123456789ab",
        flags=["imputed:ax"],
    )


@pytest.fixture(params=["orjson", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(jsontext, "orjson", None)
    elif jsontext.orjson is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


def test_a_prediction_is_compact_utf8_json(encoder: str) -> None:
    pred = _pred()
    text = pred.to_json()
    assert '"seq":41' in text and '"stream":"dév-1"' in text  # UTF-8 as is, not \u escapes
    assert json.loads(text) == {
        "seq": 41,
        "time": 1764000000.125,
        "stream": "dév-1",
        "values": [0.12345679104328156, 0.8234567910432816, 1.5e16],
        "label": "walk",
        "probability": 0.8234567910432816,
        "latency_us": 254.32,
        "model": "0123456789ab",
        "flags": ["imputed:ax"],
    }
    assert text == json.dumps(pred.to_dict(), separators=(",", ":"), ensure_ascii=False)
    assert pred.payload(42) == text.replace('"seq":41', '"seq":42').encode() and pred.seq == 42


def test_non_finite_numbers_are_null(encoder: str) -> None:
    pred = Prediction(seq=1, time=1.0, stream="d", values=[math.nan, math.inf, 0.5], anomaly=-math.inf)
    data = json.loads(pred.to_json())
    assert data["values"] == [None, None, 0.5] and data["anomaly"] is None


def test_numpy_values_are_numbers(encoder: str) -> None:
    assert json.loads(jsontext.dumps({"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7)})) == {
        "a": 0.5,
        "b": [0, 1, 2],
        "c": 7,
    }
