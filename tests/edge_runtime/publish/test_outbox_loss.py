"""Seq numbers survive the loss of the outbox (issue 14 item 8). A subscriber that drops repeats by
(device, seq), as `mosquitto_sub -c` users do, must lose nothing when the outbox file is deleted, garbled or
replaced between two runs; when continuity cannot be proven, the status says so (a new `epoch`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.edge_runtime.publish.helpers import wait_until
from tests.edge_runtime.publish.test_run_sigkill import _bundle

pytestmark = pytest.mark.broker


def _csv(path: Path, n: int, t0: float) -> Path:
    from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE

    rng = np.random.default_rng(int(t0) % 1000)
    rows = ["t," + ",".join(FEATURES)]
    rows += [f"{t0 + i * 0.001:.3f}," + ",".join(f"{v:.4f}" for v in rng.normal(OFFSET, SCALE)) for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _cmd(bundle: Path, csv: Path, url: str, state: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy"]
    cmd += ["--mqtt", url, "--device", "dev1", "--state-dir", str(state), "--quiet", "--max-state-age", "3600"]
    return [*cmd, "--checkpoint-every", "100", *extra]


def _status(broker, timeout: float = 10.0) -> dict:
    """The retained status, read with mosquitto_sub (-C 1: the retained message, then exit)."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edgernn/dev1/status", "-C", "1"],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_deleting_the_outbox_between_runs_loses_nothing_at_a_dedup_subscriber(mosquitto, mosquitto_sub, tmp_path):
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-loss")
    bundle, state = _bundle(tmp_path), tmp_path / "state"
    first = subprocess.run(_cmd(bundle, _csv(tmp_path / "a.csv", 300, 1.7e9), mosquitto.url, state),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert first.returncode == 0, first.stderr
    epoch1 = _status(mosquitto)["outbox"]["epoch"]
    (state / "outbox.sqlite").unlink()  # an operator "cleans up", or the SD card loses the file
    second = subprocess.run(_cmd(bundle, _csv(tmp_path / "b.csv", 300, 1.7e9 + 10), mosquitto.url, state),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert second.returncode == 0, second.stderr
    got = sub.wait_for(600, 20)
    assert len(set(got)) == 600 and {s for _, s in got} == set(range(1, 601)), len(set(got))
    status = _status(mosquitto)["outbox"]
    assert status["epoch"] != epoch1 and status["seq_resumed"] == "checkpoint", status


def test_after_a_crash_and_a_lost_outbox_seq_skips_ahead_and_never_repeats(mosquitto, mosquitto_sub, tmp_path):
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-loss-kill")
    bundle, state = _bundle(tmp_path), tmp_path / "state"
    cmd = _cmd(bundle, _csv(tmp_path / "a.csv", 3000, 1.7e9), mosquitto.url, state, "--rate", "recorded")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: len(sub.lines()) >= 450 or first.poll() is not None, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    seen = {s for _, s in sub.wait_for(10**6, 2)}  # what the broker had before the crash
    (state / "outbox.sqlite").unlink()
    second = subprocess.run(_cmd(bundle, _csv(tmp_path / "b.csv", 200, 1.7e9 + 10), mosquitto.url, state),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert second.returncode == 0, second.stderr
    after = {s for _, s in sub.wait_for(len(seen) + 200, 20)} - seen
    assert len(after) == 200 and min(after) > max(seen), (max(seen), sorted(after)[:3])
    assert _status(mosquitto)["outbox"]["seq_resumed"] == "checkpoint + 100 (unclean stop)"


def test_garbled_state_and_outbox_at_start_are_one_line_each_and_the_run_goes_on(mosquitto, mosquitto_sub, tmp_path):
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-garbled")
    bundle, state = _bundle(tmp_path), tmp_path / "state"
    state.mkdir()
    (state / "state-dev1.npz").write_bytes(b"PK\x03\x04 truncated by a power cut")
    (state / "outbox.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xa5" * 8000)
    r = subprocess.run(_cmd(bundle, _csv(tmp_path / "a.csv", 100, 1.7e9), mosquitto.url, state),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "starting from a fresh state: cannot read the state checkpoint" in r.stderr
    assert "is not a readable SQLite database" in r.stderr and "a new outbox starts" in r.stderr
    assert "outbox disk: unreadable 1" in r.stderr and "state disk: state_unreadable 1" in r.stderr, r.stderr
    assert len(set(sub.wait_for(100, 20))) == 100
    assert len(list(state.glob("*.bad-*"))) == 2
