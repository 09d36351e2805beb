"""`edgernn run` at the end of a finite source (issue 14 item 15): the outbox is drained within
`--drain-timeout`, and the summary says what was left and why. Real Mosquitto, real `edgernn run`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_sim.broker import free_port
from tests.edge_runtime.publish.helpers import wait_until
from tests.edge_runtime.publish.test_run_sigkill import _bundle, _csv

pytestmark = pytest.mark.broker


def _cmd(bundle: Path, csv: Path, url: str, state: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy"]
    return [*cmd, "--mqtt", url, "--device", "dev1", "--state-dir", str(state), "--quiet", *extra]


def test_a_replay_waits_for_a_stalled_broker_and_delivers_everything(mosquitto, mosquitto_sub, tmp_path):
    n = 1500
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-drain")
    bundle, (csv, _) = _bundle(tmp_path), _csv(tmp_path / "r.csv", n)
    run = subprocess.Popen(_cmd(bundle, csv, mosquitto.url, tmp_path / "s", "--drain-timeout", "30"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert wait_until(lambda: len(sub.lines()) > 0, 30), "no prediction arrived"
        mosquitto.proc.send_signal(signal.SIGSTOP)  # the broker stalls (a busy host) for longer than 5 s
        time.sleep(7)
        mosquitto.proc.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=60)
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)
        run.kill()
    assert run.returncode == 0, err
    assert f"mqtt: delivered {n}, waiting in outbox 0" in err, err
    assert len(set(sub.wait_for(n, 10))) == n


def test_what_is_left_and_why_when_the_broker_is_away(tmp_path):
    n = 200
    bundle, (csv, _) = _bundle(tmp_path), _csv(tmp_path / "r.csv", n)
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    r = subprocess.run(_cmd(bundle, csv, url, tmp_path / "s", "--drain-timeout", "1"),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 30
    assert (
        f"waiting in outbox {n}, dropped 0 (left for the next start: the broker was not connected during the 1 s "
        "drain (--drain-timeout))" in r.stderr
    ), r.stderr


def test_a_negative_drain_timeout_is_refused_by_name(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgernn", "run", str(tmp_path), "--drain-timeout", "-1"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "drain timeout -1.0; allowed: seconds >= 0" in r.stderr, r.stderr
