"""docs/prediction.schema.json describes exactly what goes on the wire: real predictions of every task
(from the runtime's Predictor) and the status payloads, through the publisher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.publish import MemoryPublisher
from edge_runtime.publish.base import will_payload

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "prediction.schema.json").read_text())


def _validator(ref: str | None = None):
    schema = SCHEMA if ref is None else {"$ref": ref, "$defs": SCHEMA["$defs"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> dict[str, list[dict]]:
    """Payloads of real predictions for classify, forecast and anomaly bundles, as the publisher sends them."""
    pytest.importorskip("torch", reason="the test bundles are built from PyTorch models")
    from edge_runtime import Predictor
    from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE, make_model, numpy_bundle

    d = tmp_path_factory.mktemp("schema")
    raw = np.random.default_rng(0).normal(OFFSET, SCALE, size=(8, 4)).astype(np.float32)
    inverse = {"kind": "standard", "offset": OFFSET, "scale": SCALE}
    bundles = {
        "classify": numpy_bundle(d / "c", make_model(), warmup=1),
        "forecast": numpy_bundle(
            d / "f", make_model(output_size=8, task="forecast", horizon=2), task="forecast",
            output={"targets": FEATURES, "horizon": 2, "inverse": inverse,
                    "interval": {"level": 0.9, "half_width": [0.5] * 8}},
        ),
        "anomaly": numpy_bundle(
            d / "a", make_model(output_size=2, task="anomaly"), task="anomaly",
            output={"targets": ["ax", "temp"],
                    "inverse": {"kind": "standard", "offset": [OFFSET[0], OFFSET[3]], "scale": [SCALE[0], SCALE[3]]},
                    "anomaly": {"threshold": 1.0, "false_alarm_rate": 0.01, "score": "forecast-residual",
                                "sigma": [0.5, 2.0]}},
        ),
    }  # fmt: skip
    out = {}
    for task, bundle in bundles.items():
        p = Predictor.load(bundle, backend="numpy")
        pub = MemoryPublisher("dev1")
        for i, r in enumerate(raw):
            reading = list(map(float, r))
            if i == 3:
                reading[1] = float("nan")  # a bad reading: held, flagged
            pred = p.step_one(reading, t=1.7e9 + i * 0.1, stream="dev1")
            if pred is not None:
                pub.publish(pred)
        out[task] = pub.predictions()
    return out


@pytest.mark.parametrize("task", ["classify", "forecast", "anomaly"])
def test_real_predictions_match_the_schema(predictions, task):
    preds = predictions[task]
    assert len(preds) >= 7
    v = _validator()
    for p in preds:
        v.validate(p)
    fields = set().union(*preds)
    expected = {"classify": {"label", "probability"}, "forecast": {"interval"}, "anomaly": {"anomaly", "is_anomaly"}}
    assert expected[task] <= fields  # the schema's optional fields really occur
    assert any(p["flags"] for p in preds)


def test_a_field_the_schema_does_not_know_is_caught(predictions):
    bad = {**predictions["classify"][0], "confidence": 0.3}
    assert not _validator().is_valid(bad)


def test_status_payloads_match_the_schema():
    pub = MemoryPublisher("dev1")
    pub.status({"readings": 10, "predictions": 9, "bad": {"non_finite": 1}, "backend": "numpy"})
    online = json.loads(pub.retained["edgernn/dev1/status"])
    pub.close()
    offline = json.loads(pub.retained["edgernn/dev1/status"])
    v = _validator("#/$defs/status")
    for payload in (online, offline, json.loads(will_payload("dev1"))):
        v.validate(payload)
    assert not v.is_valid({**online, "password": "x"})
