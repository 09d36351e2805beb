"""`edgernn run` printing to stdout: its seqs come from the publisher, as with MQTT, and carry on across
restarts from the publisher's seqs saved with each state checkpoint; after a crash they skip ahead, never
repeat. A state checkpoint from before the publisher owned seq still loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.stream.predictor import Predictor
from edgernn.cli import main
from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE, make_model, numpy_bundle

ROOT = Path(__file__).resolve().parents[2]
RAW = np.random.default_rng(3).normal(OFFSET, SCALE, size=(8, 4)).astype(np.float32)  # (L, C) raw readings


def _csv(path: Path, n: int, t0: float) -> Path:
    row = ",".join(["0", "1", "-2", "20"])
    path.write_text("t," + ",".join(FEATURES) + "\n" + "".join(f"{t0 + i * 0.01:.2f},{row}\n" for i in range(n)))
    return path


def test_a_crashed_stdout_run_skips_ahead_and_never_prints_a_seq_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, state = numpy_bundle(tmp_path / "b", make_model()), tmp_path / "state"
    csv = _csv(tmp_path / "slow.csv", 2000, 1000.0)  # 20 s at the recorded pace: killed long before the end
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"csv:{csv}", "--rate", "recorded"]
    cmd += ["--state-dir", str(state), "--checkpoint-every", "10", "--backend", "numpy"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    printed: list[int] = []
    deadline = time.monotonic() + 60
    while len(printed) < 35 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        printed.append(json.loads(line)["seq"])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(printed) >= 35 and printed == list(range(1, len(printed) + 1)), printed[:5]
    saved = json.loads((state / "seq-dev1.json").read_text())
    assert saved["clean"] is False and 30 <= saved["seq"]["dev1"] <= printed[-1]
    assert main(["run", str(bundle), "--source", f"csv:{_csv(tmp_path / 'b.csv', 3, 1100.0)}",
                 "--state-dir", str(state), "--checkpoint-every", "10"]) == 0  # fmt: skip
    after = [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]
    # continued after the last checkpoint's seqs + one checkpoint interval: past anything printed before
    assert after == [saved["seq"]["dev1"] + 10 + i for i in (1, 2, 3)] and after[0] > max(printed)
    assert json.loads((state / "seq-dev1.json").read_text()) == {"format": 1, "clean": True, "seq": {"dev1": after[-1]}}


def test_a_state_checkpoint_written_when_the_predictor_counted_seq_still_loads(tmp_path: Path) -> None:
    bundle, state = numpy_bundle(tmp_path / "b", make_model()), tmp_path / "s"
    live = Predictor.load(bundle, backend="numpy", state_dir=state, device="d1")
    now = time.time()
    for i, r in enumerate(RAW[:5]):
        live.step_one(r, t=now + 0.1 * i)
    path = live.save_state()
    assert path is not None
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **arrays, seq=np.asarray([5], np.int64), final=np.asarray(True))  # the old layout's fields
    back = Predictor.load(bundle, backend="numpy", state_dir=state, device="d1")
    assert back.restored is not None and back.restored[0] == 1
    a, b = live.step_one(RAW[6], t=now + 0.6), back.step_one(RAW[6], t=now + 0.6)
    assert a is not None and b is not None and a.values == b.values
