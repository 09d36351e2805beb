"""`edgernn run --mqtt` killed with SIGKILL mid-stream and started again: nothing lost, seq continues,
hidden state restored from its checkpoint. Counted at `mosquitto_sub`, a subscriber that is not ours."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.edge_runtime.publish.helpers import report_figures, wait_until

pytestmark = pytest.mark.broker

N = 3000  # readings, 1 ms apart, replayed at their recorded pace: about 3 s per run


def _bundle(tmp_path: Path) -> Path:
    from tests.edge_runtime.conftest import numpy_bundle

    try:
        from tests.edge_runtime.conftest import make_model
    except ImportError as exc:  # pragma: no cover - torch missing
        pytest.skip(f"needs torch to build the test bundle: {exc}")
    return numpy_bundle(tmp_path / "bundle", make_model(), warmup=2)


def _csv(path: Path, n: int = N) -> tuple[Path, list[float]]:
    from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE

    rng = np.random.default_rng(1)
    times = [1.7e9 + i * 0.001 for i in range(n)]
    rows = ["t," + ",".join(FEATURES)]
    rows += [f"{t:.3f}," + ",".join(f"{v:.4f}" for v in rng.normal(OFFSET, SCALE)) for t in times]
    path.write_text("\n".join(rows) + "\n")
    return path, [round(t, 3) for t in times]


def _run(bundle: Path, csv: Path, url: str, state: Path, every: int = 100) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"csv:{csv}", "--rate", "recorded"]
    cmd += ["--backend", "numpy", "--mqtt", url, "--device", "dev1", "--state-dir", str(state)]
    # The test bundle says 10 readings/s, so by default a checkpoint older than 1 s counts as stale;
    # the restart here takes about that long, and the point is to see the state come back.
    cmd += ["--checkpoint-every", str(every), "--max-state-age", "60", "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_and_restart(
    tmp_path: Path, url: str, sub, every: int, kill_after: int, n: int = N
) -> tuple[list[dict], dict, str]:
    """Run, SIGKILL once `kill_after` predictions arrived, run again to the end; what the subscriber saw."""
    bundle = _bundle(tmp_path)
    csv, times = _csv(tmp_path / "readings.csv", n)
    state = tmp_path / "state"
    first = _run(bundle, csv, url, state, every)
    if not wait_until(lambda: len(sub.lines()) >= kill_after or first.poll() is not None, 60, step=0.02):
        first.kill()
    assert first.poll() is None, f"edgernn run ended before it could be killed: {first.stderr.read()}"  # type: ignore[union-attr]
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    db = sqlite3.connect(state / "outbox.sqlite")
    committed = db.execute("SELECT last FROM seq WHERE stream = 'dev1'").fetchone()[0]
    waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    db.close()
    second = _run(bundle, csv, url, state, every)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    preds = [json.loads(ln.split(" ", 1)[1]) for ln in sub.lines() if ln.startswith("edgernn/dev1/prediction ")]
    seqs = {p["seq"] for p in preds}
    contents = {json.dumps(p, sort_keys=True) for p in preds}
    figs = {
        "readings": n,
        "readings_without_a_prediction": len(set(times) - {round(p["time"], 3) for p in preds}),
        "seq_gaps": (max(seqs) - min(seqs) + 1) - len(seqs),
        "seq_with_two_contents": len(contents) - len(seqs),
        "duplicates": len(preds) - len(seqs),
        "committed_before_kill": committed,
        "outbox_rows_at_kill": waiting,
    }
    return preds, figs, err


def test_run_sigkilled_mid_stream_loses_nothing_and_continues(mosquitto, mosquitto_sub, tmp_path):
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-run")
    preds, figs, err = _kill_and_restart(tmp_path, mosquitto.url, sub, every=100, kill_after=800)
    report_figures("edgernn run SIGKILL", figs)
    # Every prediction that left the device arrives: seq has no hole and never names two predictions;
    # and every reading has one (the state checkpoint never gets ahead of the outbox).
    assert min(p["seq"] for p in preds) == 1 and figs["seq_gaps"] == 0 and figs["seq_with_two_contents"] == 0, figs
    assert figs["readings_without_a_prediction"] == 0, figs
    # seq continues: the restarted run's first prediction follows the last one committed before the kill,
    # and it is not warming up (warmup=2 readings): the stream's state came back from the checkpoint.
    resumed = next(p for p in preds if p["seq"] == figs["committed_before_kill"] + 1)
    assert "warming_up" not in resumed["flags"], resumed
    assert [p["flags"] for p in preds if p["seq"] in (1, 2)] == [["warming_up"], ["warming_up"]]
    assert "stale state 0" in err, err


def test_run_sigkilled_right_after_checkpoints_still_predicts_every_reading(mosquitto, mosquitto_sub, tmp_path):
    """With a checkpoint at every reading, a kill always lands just after one: the outbox (committed every
    20 ms) must already hold every prediction the checkpoint implies, or those readings are never predicted."""
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-run-ckpt")
    _, figs, _ = _kill_and_restart(tmp_path, mosquitto.url, sub, every=1, kill_after=100, n=300)
    report_figures("edgernn run SIGKILL, checkpoint every reading", figs)
    assert figs["seq_gaps"] == 0 and figs["seq_with_two_contents"] == 0, figs
    assert figs["readings_without_a_prediction"] == 0, figs


def test_run_with_a_wrong_password_exits_non_zero_instead_of_retrying(secure_broker, pki, tmp_path):
    import os
    import time

    bundle = _bundle(tmp_path)
    csv, _ = _csv(tmp_path / "readings.csv")
    env = {
        **os.environ,
        "EDGERNN_MQTT_USERNAME": "dev1",
        "EDGERNN_MQTT_PASSWORD": "wrong",
        "EDGERNN_MQTT_CA": str(pki["ca"]),
    }
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy"]
    t0 = time.monotonic()
    proc = subprocess.run([*cmd, "--mqtt", secure_broker.url], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and time.monotonic() - t0 < 30
    assert "edgernn run: error: broker mqtts://127.0.0.1:" in proc.stderr and "refused the login" in proc.stderr
    assert "wrong" not in proc.stderr.replace("refused", "") and "Traceback" not in proc.stderr
