"""A manifest that agrees with itself but not with its graphs (issue 14 item 12): every backend compares the
shapes the artifact declares with the manifest before it allocates anything, one line naming both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_runtime.bundle.loader import Bundle
from edgernn.cli import main
from edgernn.errors import BundleError
from tests.exporter.conftest import Exported


@pytest.fixture
def wider(exported: dict[str, Exported], tmp_path: Path) -> Path:
    """gru1-forecast (hidden 16) whose manifest says hidden 48, state shape included."""
    dst = tmp_path / "gru"
    shutil.copytree(exported["gru1-forecast"].path, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["model"]["hidden_size"] = 48
    m["state"][0]["shape"] = [1, "batch", 48]
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize("artifact", ["onnx-fp32", "onnx-int8", "tflite-fp32", "numpy-fp32"])
def test_each_backend_refuses_a_manifest_its_graph_contradicts(wider: Path, artifact: str) -> None:
    bundle = Bundle.open(wider)
    try:
        backend = bundle.open_backend(artifact)
    except BundleError as exc:
        text = str(exc)
    else:  # pragma: no cover - the defect
        backend.close()
        pytest.fail(f"{artifact} opened with a manifest that says hidden_size 48 for a graph of 16")
    says = {
        "onnx": "declares h_in of shape [1, 'batch', 16], the manifest's model needs [1, '?', 48]",
        "tflite": "declares h_in of shape [1, 1, 16], the manifest's model needs [1, '?', 48]",
        "numpy": "NumPy weights 'l0.f.wx' have shape (2, 48), the manifest's model needs (2, 144)",
    }[artifact.split("-")[0]]
    assert "\n" not in text and says in text, text


def test_inspect_verify_names_the_contradiction(wider: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(wider), "--verify"]) == 2
    err = capsys.readouterr().err
    assert "declares h_in of shape [1, 'batch', 16]" in err and "Traceback" not in err, err
