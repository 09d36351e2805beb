"""`edgernn inspect`: the quality table, and `--verify` passing on a fresh bundle and failing clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.bundle.golden import verify_golden
from edge_runtime.bundle.loader import sha256_file
from edgernn.cli import main
from tests.exporter.conftest import Exported


@pytest.fixture
def gru_copy(exported: dict[str, Exported], tmp_path: Path) -> Path:
    dst = tmp_path / "gru"
    shutil.copytree(exported["gru1-forecast"].path, dst)
    return dst


def test_inspect_prints_the_quality_table(exported: dict[str, Exported], capsys: pytest.CaptureFixture[str]) -> None:
    ex = exported["lstm2-classify"]
    assert main(["inspect", str(ex.path)]) == 0
    out = capsys.readouterr().out
    assert "lstm, 2 layer(s) x 16 hidden" in out and "idle, walk, run" in out
    header = next(line for line in out.splitlines() if line.startswith("artifact"))
    assert "accuracy" in header and "macro F1" in header and "max|dev|" in header and "tolerance" in header
    for art in ex.manifest.artifacts:
        row = next(line for line in out.splitlines() if line.startswith(art.id + " "))
        assert f"{ex.manifest.quality[art.id]['accuracy']:.4f}" in row and row.rstrip().endswith("ok")
    assert "warm-up" in out and "DynamicQuantizeLSTM" in out


def test_inspect_json(exported: dict[str, Exported], capsys: pytest.CaptureFixture[str]) -> None:
    ex = exported["gru1-forecast"]
    assert main(["inspect", str(ex.path), "--json", "--verify"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["manifest"]["model"]["cell"] == "gru"
    assert {r["artifact"] for r in doc["verify"] if r["ok"]} >= set(ex.manifest.artifact_ids())


def test_verify_passes_on_a_fresh_bundle(gru_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(gru_copy), "--verify"]) == 0
    out = capsys.readouterr().out
    for aid in ("scaler", "onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8", "numpy-fp32", "numpy-int8"):
        assert any(line.startswith(aid) and " PASS " in line for line in out.splitlines()), aid


def test_verify_fails_naming_the_artifact_whose_bytes_were_altered(
    gru_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gru_copy / "model.int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["inspect", str(gru_copy), "--verify"]) == 2
    captured = capsys.readouterr()
    assert "edgernn inspect: error: golden vectors fail for tflite-int8" in captured.err
    assert "model.int8.tflite has sha256" in captured.err
    fails = [line for line in captured.out.splitlines() if " FAIL " in line]
    assert len(fails) == 1 and fails[0].startswith("tflite-int8")


def test_verify_fails_when_outputs_differ(gru_copy: Path) -> None:
    """A runtime that computes something else (here: golden vectors from another model) is caught."""
    with np.load(gru_copy / "golden.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["y:onnx-fp32"] = arrays["y:onnx-fp32"] + np.float32(1e-3)
    np.savez(gru_copy / "golden.npz", **arrays)
    manifest = json.loads((gru_copy / "manifest.json").read_text())
    manifest["golden"]["sha256"] = sha256_file(gru_copy / "golden.npz")
    manifest["golden"]["bytes"] = (gru_copy / "golden.npz").stat().st_size
    (gru_copy / "manifest.json").write_text(json.dumps(manifest))
    results = {r.artifact: r for r in verify_golden(gru_copy)}
    assert not results["onnx-fp32"].ok and "outputs differ" in results["onnx-fp32"].message
    assert results["onnx-fp32"].max_abs_dev == pytest.approx(1e-3, rel=1e-2)
    assert all(r.ok for k, r in results.items() if k != "onnx-fp32")


def test_verify_catches_an_altered_golden_file(gru_copy: Path) -> None:
    with np.load(gru_copy / "golden.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x"] = arrays["x"] * 2
    np.savez(gru_copy / "golden.npz", **arrays)
    (r,) = verify_golden(gru_copy)
    assert not r.ok and "golden.npz has sha256" in r.message


def test_inspect_verify_never_imports_torch(exported: dict[str, Exported]) -> None:
    code = (
        "import sys\nfrom edgernn.cli import main\n"
        f"rc = main(['inspect', {str(exported['gru1-tokens'].path)!r}, '--verify'])\n"
        "print('RC', rc, 'TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "RC 0 TORCH False" in out


def test_verify_fails_on_an_artifact_measured_out_of_tolerance(
    gru_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """This machine reproduces it, but the bundle's own figures say it is not fit to run: --verify says so."""
    manifest = json.loads((gru_copy / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["id"] == "onnx-int8":
            a.update(status="out_of_tolerance", reason="max abs deviation from PyTorch 0.447 exceeds its tolerance 0.4")
    (gru_copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["inspect", str(gru_copy), "--verify"]) == 2
    captured = capsys.readouterr()
    fails = [line for line in captured.out.splitlines() if " FAIL " in line]
    assert len(fails) == 1 and fails[0].startswith("onnx-int8")
    assert "reproduced here, but out of tolerance at export: max abs deviation from PyTorch 0.447" in fails[0]
    assert "golden vectors fail for onnx-int8" in captured.err


def test_loading_tflite_artifacts_prints_no_interpreter_noise(gru_copy: Path) -> None:
    """The interpreter's C++ 'Created TensorFlow Lite XNNPACK delegate' line used to open most commands' output."""
    done = subprocess.run(
        [sys.executable, "-m", "edgernn", "inspect", str(gru_copy), "--verify"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr and "XNNPACK" not in done.stdout
    assert any(line.startswith("tflite-int8") and " PASS " in line for line in done.stdout.splitlines())
