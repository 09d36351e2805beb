"""A serial device unplugged: `edgernn run` reopens the port with back-off, counts the outage, keeps state."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.edge_runtime.conftest import FEATURES, make_model, numpy_bundle

pytest.importorskip("serial")
ROOT = Path(__file__).resolve().parents[2]


def _plug(link: Path) -> int:
    """A new pty whose slave `link` points at, as a USB adapter plugged in again; returns the writer's end."""
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    os.close(slave)  # the runtime opens it by name
    tmp = link.with_suffix(".new")
    tmp.symlink_to(name)
    os.replace(tmp, link)
    return master


def _write(master: int, n: int, t0: float) -> None:
    for i in range(n):
        reading = dict(zip(FEATURES, [0.1, 1.0, -2.0, 20.0], strict=True)) | {"t": t0 + i * 0.1}
        os.write(master, (json.dumps(reading) + "\n").encode())
        time.sleep(0.02)


def test_unplugged_port_is_reopened_and_the_run_goes_on(tmp_path: Path) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model())
    link = tmp_path / "ttyUSB0"
    master = _plug(link)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"serial:{link}", "--backend", "numpy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(3.0)  # the runtime has started and opened the port
        _write(master, 5, 1000.0)
        time.sleep(0.5)
        os.close(master)  # unplugged: the reader gets EIO
        time.sleep(1.5)
        master = _plug(link)  # back
        time.sleep(2.5)  # the back-off finds it (0.5 s, 1 s, 2 s)
        _write(master, 5, 1000.5)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "SerialException" not in err
    preds = [json.loads(line) for line in out.splitlines()]
    assert [p["seq"] for p in preds] == list(range(1, 11)), out  # one stream, carried on across the outage
    assert "serial port lost (" in err and "serial port back after" in err
    assert "serial port lost 1 time(s)" in err and "10 readings, 10 predictions" in err
