"""No library noise on a user's terminal: `edgernn export` and `edgernn run` as a user starts them (a fresh
process, stderr not redirected by the test harness), on TFLite and ONNX artifacts.

TensorFlow/absl/oneDNN start-up lines, the TFLite interpreter's "Created TensorFlow Lite XNNPACK delegate",
glog-style C++ lines and Python deprecation warnings carry nothing for the user; the issue saw them on export
and on most commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exporter.factory import make_checkpoint
from trainer.checkpoint import save_checkpoint

pytestmark = pytest.mark.slow  # one TFLite export in a fresh process: the converter's import alone takes seconds

# the lines seen, by their marks (never a word of our own output: "tflite" names artifacts in the quality table)
NOISE = re.compile(
    r"absl|oneDNN|TensorFlow|tensorflow/|XNNPACK|Deprecat|FutureWarning|UserWarning|RuntimeWarning"
    r"|All log messages before|^[IWEF]\d{4} \d\d:\d\d",
    re.MULTILINE,
)


def _edgernn(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    return subprocess.run(
        [sys.executable, "-m", "edgernn", *args], input=stdin, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def quiet_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("quiet")
    ckpt, heldout = make_checkpoint("gru", "classify", hidden=8, steps=40)
    (root / "run").mkdir()
    save_checkpoint(ckpt, root / "run" / "checkpoint.pt")
    heldout.save(root / "run" / "heldout.npz")
    done = _edgernn("export", str(root / "run"), "--out", str(root / "bundle"), "--formats", "onnx,tflite,numpy")
    return root / "bundle", done


def test_export_prints_no_library_noise(quiet_bundle: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    bundle, done = quiet_bundle
    assert done.returncode == 0, done.stderr
    assert {"tflite-fp32", "tflite-int8", "onnx-int8"} <= {a["id"] for a in _artifacts(bundle)}
    assert not NOISE.search(done.stderr), done.stderr
    assert not NOISE.search(done.stdout), done.stdout


@pytest.mark.parametrize("artifact", ["tflite-fp32", "tflite-int8", "onnx-int8"])
def test_run_prints_no_library_noise(
    quiet_bundle: tuple[Path, subprocess.CompletedProcess[str]], artifact: str
) -> None:
    bundle, _ = quiet_bundle
    readings = "".join(json.dumps([0.1 * i, 0.2, -0.1]) + "\n" for i in range(5))
    done = _edgernn("run", str(bundle), "--artifact", artifact, "--source", "stdin", stdin=readings)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 5  # one prediction per reading
    assert not NOISE.search(done.stderr), done.stderr
    assert done.stderr.startswith("edgernn run: 5 readings, 5 predictions"), done.stderr


def _artifacts(bundle: Path) -> list[dict[str, str]]:
    artifacts: list[dict[str, str]] = json.loads((bundle / "manifest.json").read_text())["artifacts"]
    return artifacts
