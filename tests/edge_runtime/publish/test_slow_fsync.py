"""Outbox throughput with every fsync made slow on purpose (issue 14 item 16): an LD_PRELOAD shim
(tests/fixtures/slowfsync.c, built with cc) sleeps 30 ms in each fsync/fdatasync, as SD cards flush; a
publisher fed 1,500 predictions/s must deliver at least 1,000/s to a real Mosquitto. The bigger measurement,
side by side with another checkout: `python scripts/bench_slow_fsync.py --compare PATH` (docs/durability.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler for the slow-fsync shim (scripts/setup.sh --broker installs gcc)")
    so = tmp_path_factory.mktemp("shim") / "slowfsync.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(ROOT / "tests/fixtures/slowfsync.c"), "-ldl"],
                   check=True, capture_output=True)  # fmt: skip
    return so


def test_a_publisher_keeps_up_with_1000_per_second_when_each_fsync_takes_30_ms(mosquitto, shim, tmp_path):
    n, rate = 3000, 1500
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LD_PRELOAD": str(shim), "EDGERNN_FSYNC_MS": "30",
           "EDGERNN_FSYNC_COUNT": str(tmp_path / "fsyncs"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, str(ROOT / "scripts/bench_slow_fsync.py"), "--child", mosquitto.url, str(n), str(rate)]
    out = subprocess.run([*cmd, str(tmp_path / "state")], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    fsyncs = sum(int(x) for x in (tmp_path / "fsyncs").read_text().split())
    print(f"\nFIGURES slow fsync 30 ms: {json.dumps({**figures, 'fsyncs': fsyncs})}")
    assert fsyncs >= 5  # the shim was in the path: every commit paid its 30 ms
    assert figures["delivered"] == n and figures["delivered_per_s"] >= 1000, figures
    assert figures["lag_after_production_s"] < 1.5, figures
