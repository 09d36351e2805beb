"""`edgernn export` end to end, and bad input: clear messages and never a complete-looking partial bundle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from edgernn.cli import main
from edgernn.errors import ConfigError, DataError, ExportError
from exporter import export_bundle
from tests.exporter.factory import make_checkpoint
from trainer.checkpoint import CHECKPOINT_FILE, HELDOUT_FILE, save_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run")
    ckpt, heldout = make_checkpoint("gru", "classify", seed=2, steps=100)
    save_checkpoint(ckpt, path / CHECKPOINT_FILE)
    heldout.save(path / HELDOUT_FILE)
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_export_cli_writes_a_bundle_and_prints_the_quality_table(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    assert main(["export", str(run_dir), "--out", str(out), "--formats", "onnx,numpy", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 4 artifact(s)" in printed
    for aid in ("pytorch", "onnx-fp32", "onnx-int8", "numpy-fp32", "numpy-int8"):
        assert any(line.startswith(aid + " ") for line in printed.splitlines()), aid
    assert sorted(p.name for p in out.iterdir()) == [
        "golden.npz", "heldout.npz", "manifest.json", "model.int8.onnx", "model.onnx", "weights.int8.npz",
        "weights.npz",
    ]  # fmt: skip
    # exporting again replaces the bundle in place, leaving nothing behind
    assert main(["export", str(run_dir), "--out", str(out), "--formats", "numpy", "--precisions", "fp32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["golden.npz", "heldout.npz", "manifest.json", "weights.npz"]
    assert _leftovers(tmp_path) == []


def test_export_help_explains_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    assert "--allow-missing" in out and "edgernn export runs/imu --out bundles/imu" in out


def test_foreign_checkpoint_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 4}, run / CHECKPOINT_FILE)
    assert main(["export", str(run), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "is not an edgernn checkpoint" in err and CHECKPOINT_FILE in err
    (run / CHECKPOINT_FILE).write_bytes(b"not a torch file at all")
    with pytest.raises(DataError, match="not an edgernn checkpoint"):
        export_bundle(run, tmp_path / "b")
    assert not (tmp_path / "b").exists() and _leftovers(tmp_path) == []


def test_checkpoint_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    ckpt, heldout = make_checkpoint("rnn", "classify", steps=1)
    bigger = dataclasses.replace(ckpt.config, hidden_size=32)
    with pytest.raises(ExportError, match="weights do not fit its ModelConfig"):
        export_bundle(dataclasses.replace(ckpt, config=bigger), tmp_path / "b", heldout=heldout, formats="onnx")
    assert not (tmp_path / "b").exists()


def test_unsupported_options_name_what_is_allowed(tmp_path: Path) -> None:
    ckpt, heldout = make_checkpoint("rnn", "classify", steps=1)
    with pytest.raises(ConfigError, match=r"unsupported format \['coreml'\]; allowed: onnx, tflite, numpy"):
        export_bundle(ckpt, tmp_path / "b", heldout=heldout, formats="onnx,coreml")
    with pytest.raises(ConfigError, match="allowed: fp32, int8"):
        export_bundle(ckpt, tmp_path / "b", heldout=heldout, precisions=["fp16"])
    no_window = dataclasses.replace(ckpt, config=dataclasses.replace(ckpt.config, bidirectional=True), training={})
    with pytest.raises(ExportError, match="window mode and needs its training window"):
        export_bundle(no_window, tmp_path / "b", heldout=heldout)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="non-empty directory that is not a bundle"):
        export_bundle(ckpt, tmp_path / "notes", heldout=heldout)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def _broken_converter(*args: object, **kwargs: object) -> None:
    raise RuntimeError("failed to legalize operation 'stablehlo.while'")


def test_a_converter_failure_aborts_unless_allowed(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import litert_torch

    monkeypatch.setattr(litert_torch, "convert", _broken_converter)
    out = tmp_path / "bundle"
    rc = main(["export", str(run_dir), "--out", str(out), "--formats", "onnx,tflite", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "tflite-fp32 failed" in err and "stablehlo.while" in err and "--allow-missing tflite" in err
    assert not out.exists() and _leftovers(tmp_path) == []

    rc = main(["export", str(run_dir), "--out", str(out), "--formats", "onnx,tflite", "--allow-missing", "tflite"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "WARNING: tflite-fp32 was not exported" in captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    status = {a["id"]: (a["status"], a["reason"]) for a in manifest["artifacts"]}
    assert status["onnx-fp32"] == ("ok", "") and status["onnx-int8"][0] == "ok"
    assert status["tflite-fp32"][0] == "failed" and "stablehlo.while" in status["tflite-fp32"][1]
    assert status["tflite-int8"] == ("failed", "needs tflite-fp32, which failed")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["golden.npz", "heldout.npz", "manifest.json", "model.int8.onnx", "model.onnx"]
    assert main(["inspect", str(out), "--verify"]) == 0


def test_a_failed_export_keeps_the_previous_bundle(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bundle"
    export_bundle(run_dir, out, formats="numpy", progress=False)
    before = (out / "manifest.json").read_text()
    import litert_torch

    monkeypatch.setattr(litert_torch, "convert", _broken_converter)
    with pytest.raises(ExportError, match="tflite-fp32 failed"):
        export_bundle(run_dir, out, formats="numpy,tflite", progress=False)
    assert (out / "manifest.json").read_text() == before and _leftovers(tmp_path) == []


def test_a_run_from_fit_exports_and_reports_what_training_reported(tmp_path: Path) -> None:
    """The device does what the training report says: the bundle's figures are the trainer's streaming ones."""
    import numpy as np

    from trainer.checkpoint import load_checkpoint
    from trainer.fitting import fit

    rng = np.random.default_rng(0)
    t = np.arange(240)
    xs = [
        np.stack([np.sin((0.2 + 0.4 * (i % 2)) * t + i), rng.normal(i % 2, 0.3, len(t))], 1).astype(np.float32)
        for i in range(12)
    ]
    labels = [["calm", "busy"][i % 2] for i in range(12)]
    run = tmp_path / "run"
    fit(
        (xs, labels), task="classify", out=run, cell="lstm", hidden=8, window=20, epochs=3, progress=False, device="cpu"
    )
    manifest = export_bundle(run, tmp_path / "bundle", formats="onnx,numpy", progress=False)
    ckpt = load_checkpoint(run)
    reported = ckpt.metrics["streaming"]
    assert manifest.quality["pytorch"]["accuracy"] == pytest.approx(reported["accuracy"])
    for aid in ("onnx-fp32", "numpy-fp32"):
        assert manifest.quality[aid]["accuracy"] == pytest.approx(reported["accuracy"])
        assert manifest.quality[aid]["readings"] == reported["readings"]
    assert manifest.provenance["data_sha256"] == ckpt.provenance["data_sha256"]


def test_an_artifact_worse_than_its_tolerance_is_reported_loudly(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter import quality

    monkeypatch.setattr(quality, "FP32_TOLERANCE", 1e-12)  # no real fp32 graph is that exact
    out = tmp_path / "bundle"
    assert main(["export", str(run_dir), "--out", str(out), "--formats", "onnx", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: onnx-fp32 is OUT OF TOLERANCE: max abs deviation from PyTorch" in captured.err
    row = next(line for line in captured.out.splitlines() if line.startswith("onnx-fp32 "))
    assert row.rstrip().endswith("OUT_OF_TOLERANCE")
    manifest = json.loads((out / "manifest.json").read_text())
    fp32 = next(a for a in manifest["artifacts"] if a["id"] == "onnx-fp32")
    assert fp32["status"] == "out_of_tolerance" and "exceeds its tolerance 1e-12" in fp32["reason"]
    assert manifest["quality"]["onnx-fp32"]["status"] == "out_of_tolerance"
