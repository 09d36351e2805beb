"""A serial device unplugged: `edgernn run` reopens the port with back-off, counts the outage, keeps state."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


def _reading(i: float) -> bytes:
    return (
        json.dumps(dict(zip(FEATURES, [0.1, 1.0, -2.0, 20.0], strict=True)) | {"t": 1000.0 + i * 0.1}) + "\n"
    ).encode()


def _until(check: Callable[[], bool], what: str, master: int | None = None, t: list[int] | None = None) -> None:
    """Wait (60 s at most, a loaded machine) for `check`; meanwhile write a reading every 0.2 s if given a port."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if master is not None and t is not None:
            os.write(master, _reading(t[0]))
            t[0] += 1
        time.sleep(0.2)


def _collect(pipe: IO[str], into: list[str]) -> threading.Thread:
    th = threading.Thread(target=lambda: into.extend(iter(pipe.readline, "")), daemon=True)
    th.start()
    return th


def test_unplugged_port_is_reopened_and_the_run_goes_on(tmp_path: Path) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model())
    link = tmp_path / "ttyUSB0"
    master = _plug(link)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle), "--source", f"serial:{link}", "--backend", "numpy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    err: list[str] = []
    readers = [_collect(proc.stdout, out), _collect(proc.stderr, err)]  # type: ignore[arg-type]
    t = [0]
    try:
        _until(lambda: len(out) >= 3, "predictions before the outage", master, t)
        os.close(master)  # unplugged: the reader gets EIO
        _until(lambda: any("serial port lost (" in line for line in err), "the outage to be noticed")
        master = _plug(link)  # back at the same name
        _until(lambda: any("serial port back after" in line for line in err), "the port to be reopened")
        before = len(out)
        for _ in range(5):
            os.write(master, _reading(t[0]))
            t[0] += 1
            time.sleep(0.05)
        _until(lambda: len(out) >= before + 5, "predictions after the outage")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        for r in readers:
            r.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    stderr = "".join(err)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "SerialException" not in stderr
    seqs = [json.loads(line)["seq"] for line in out]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # one stream, carried on across the outage
    assert "serial port lost 1 time(s)" in stderr and f"{len(seqs)} predictions" in stderr
