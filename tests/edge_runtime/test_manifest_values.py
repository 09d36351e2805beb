"""Manifest values are checked before anything is sized by them (issue 14 item 12): each bad value is one
BundleError line naming the value and what is allowed, at `Bundle.open`, `edgernn run` and `inspect`."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime import Predictor
from edgernn.errors import BundleError
from tests.edge_runtime.conftest import make_model, numpy_bundle

CASES = {
    # name: (edit of the manifest dict, what the message must say)
    "hidden_size 1e9": (
        lambda m: (m["model"].update(hidden_size=10**9), m["state"][0].update(shape=[1, "batch", 10**9])),
        "model.hidden_size = 1000000000; allowed: a whole number from 1 to 65,536",
    ),
    "hidden_size a fraction": (lambda m: m["model"].update(hidden_size=16.5), "model.hidden_size = 16.5"),
    "state shape off": (lambda m: m["state"][0].update(shape=[1, "batch", 17]), "state 'h' shape = [1, 'batch', 17]"),
    "hop 0": (
        lambda m: m.update(mode="window", window={"length": 5, "hop": 0}, state=[]),
        "window.hop = 0; allowed: a whole number from 1 to 5",
    ),
    "zero scale": (
        lambda m: m["input"]["scaler"]["scale"].__setitem__(1, 0.0),
        "input.scaler.scale[1] = 0.0; allowed: a finite number other than 0",
    ),
    "NaN offset": (lambda m: m["input"]["scaler"]["offset"].__setitem__(0, float("nan")), "input.scaler.offset[0]"),
    "short scaler": (
        lambda m: m["input"]["scaler"]["offset"].pop(),
        "input.scaler.offset has 3 value(s); allowed: 4 numbers, one per input feature",
    ),
    "labels vs output_size": (lambda m: m["output"]["labels"].append("extra"), "output.labels has 4 labels"),
    "sample rate": (lambda m: m["input"].update(sample_rate=-1), "input.sample_rate = -1"),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("b") / "b", make_model())


def _tampered(good: Path, tmp_path: Path, edit) -> Path:
    import shutil

    d = tmp_path / "tampered"
    shutil.copytree(good, d)
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    return d


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_manifest_value_is_one_line_naming_it(good, tmp_path, case):
    edit, says = CASES[case]
    bundle = _tampered(good, tmp_path, edit)
    with pytest.raises(BundleError) as info:
        Predictor.load(bundle, backend="numpy")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_run_and_inspect_refuse_a_huge_hidden_size_without_allocating(good, tmp_path):
    """Under a 2 GiB address-space limit: before the fix, loading tried to allocate gigabytes (or crashed)."""
    bundle = _tampered(good, tmp_path, CASES["hidden_size 1e9"][0])

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    for cmd in (["run", str(bundle), "--source", "stdin", "--backend", "numpy"], ["inspect", str(bundle), "--verify"]):
        r = subprocess.run(
            [sys.executable, "-m", "edgernn", *cmd], input="", capture_output=True, text=True, timeout=60,
            preexec_fn=limit,
        )  # fmt: skip
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "model.hidden_size = 1000000000" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
