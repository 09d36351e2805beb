"""The manifest: validates against the documented schema, round-trips, and carries what the device needs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import edge_runtime
from edge_runtime.bundle.manifest import Manifest
from tests.exporter.conftest import Exported

SCHEMA = json.loads((Path(edge_runtime.__file__).parent / "bundle" / "manifest.schema.json").read_text())


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_manifest_validates_and_round_trips(bundle: Exported) -> None:
    raw = json.loads((bundle.path / "manifest.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(raw)
    loaded = Manifest.load(bundle.path)
    assert loaded.to_dict() == raw
    assert Manifest.from_dict(json.loads(json.dumps(loaded.to_dict()))).to_dict() == raw


def test_schema_refuses_what_the_loader_refuses(exported: dict[str, Exported]) -> None:
    raw = json.loads((exported["gru1-forecast"].path / "manifest.json").read_text())
    validator = jsonschema.Draft202012Validator(SCHEMA)
    bad_format = json.loads(json.dumps(raw))
    bad_format["artifacts"][0]["format"] = "coreml"
    unknown_key = json.loads(json.dumps(raw))
    unknown_key["input"]["units"] = "C"
    escaping = json.loads(json.dumps(raw))
    escaping["artifacts"][0]["file"] = "/etc/passwd"
    for doc in (bad_format, unknown_key, escaping):
        assert not validator.is_valid(doc)


def test_stream_manifest_describes_input_output_state(exported: dict[str, Exported]) -> None:
    ex = exported["lstm2-classify"]
    m, data = ex.manifest, ex.ckpt.data
    assert m.mode == "stream" and m.window is None
    assert m.input.features == data.features and m.input.dtype == "float32"
    assert m.input.scaler is not None and m.input.scaler.offset == pytest.approx(data.scaler.offset)
    assert m.input.ranges["max"] == pytest.approx(data.ranges["max"]) and m.input.sample_rate == 50.0
    assert m.output.labels == ["idle", "walk", "run"]
    assert [(s.name, s.shape) for s in m.state] == [("h", [2, "batch", 16]), ("c", [2, "batch", 16])]
    ids = m.artifact_ids()
    assert ids == [
        "onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8", "tflite-fp32-b4", "tflite-int8-b4",
        "numpy-fp32", "numpy-int8",
    ]  # fmt: skip
    onnx8 = m.artifact("onnx-int8")
    assert onnx8.opset == 17 and onnx8.batch is None
    assert any("DynamicQuantizeLSTM" in q for q in onnx8.quantized)
    assert m.artifact("tflite-int8-b4").batch == [4]
    assert m.format["version"] == 1 and m.format["edgernn"]
    assert m.provenance["seed"] == 1 and "torch" in m.provenance["export"]["libraries"]


def test_gru_int8_onnx_says_what_stayed_float(exported: dict[str, Exported]) -> None:
    art = exported["gru1-forecast"].manifest.artifact("onnx-int8")
    assert any("MatMulInteger" in q for q in art.quantized)
    assert any("no int8 GRU kernel" in k for k in art.kept_float)


def test_forecast_and_anomaly_outputs(exported: dict[str, Exported]) -> None:
    f = exported["gru1-forecast"].manifest.output
    assert f.targets == ["temp"] and f.horizon == 2 and f.inverse is not None
    assert f.interval is not None and len(f.interval["half_width"]) == 2
    a = exported["lstm1-anomaly"].manifest
    assert a.output.anomaly is not None and a.output.anomaly["threshold"] > 0 and len(a.output.anomaly["sigma"]) == 2
    q = a.quality
    assert q["pytorch"]["auc"] > 0.9 and 0 <= q["onnx-int8"]["false_alarm_rate"] <= 0.1


def test_window_and_token_bundles(exported: dict[str, Exported]) -> None:
    bi = exported["lstm1-bidir"].manifest
    assert bi.mode == "window" and bi.window is not None and bi.window.length == 32 and bi.window.hop == 1
    assert bi.state == []
    tok = exported["gru1-tokens"].manifest
    assert tok.input.dtype == "int64" and tok.input.scaler is None and tok.input.vocabulary == [*"abcdef"]
