"""The state checkpoint on a disk that will not give or take: a truncated file, a read-only or full disk.

The device keeps predicting from a fresh (or its last) state, says so in one line, sets a bad file aside
and counts what it could not read or write (the counters go to the status topic and the run summary)."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from edge_runtime import Predictor
from tests.edge_runtime.conftest import OFFSET, SCALE, make_model, numpy_bundle

RAW = np.random.default_rng(5).normal(OFFSET, SCALE, size=(40, 4)).astype(np.float32)  # (L, C)


@pytest.fixture
def bundle(tmp_path):
    return numpy_bundle(tmp_path / "b", make_model())


_clock = [time.time()]


def _run(p: Predictor, n: int = 20) -> int:
    """n readings, 10 ms apart, later than any before; how many gave a prediction."""
    made = 0
    for r in RAW[:n]:
        _clock[0] += 0.01
        made += p.step_one(r, t=_clock[0]) is not None
    return made


def test_truncated_checkpoint_is_set_aside_counted_and_the_device_starts_fresh(bundle, tmp_path, caplog):
    state = tmp_path / "s"
    p = Predictor.load(bundle, backend="numpy", state_dir=state)
    _run(p)
    p.close()
    path = state / "state-dev1.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a power cut on a disk that lies about fsync
    with caplog.at_level(logging.WARNING):
        q = Predictor.load(bundle, backend="numpy", state_dir=state)
    assert q.counters["disk"] == {"state_unreadable": 1} and q.counters["stale_state"] == 1
    aside = [f.name for f in state.iterdir() if f.name.startswith("state-dev1.npz.bad-")]
    assert len(aside) == 1 and not path.exists()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0] and aside[0] in lines[0], lines
    assert _run(q) == 20  # keeps predicting, and saves a good checkpoint again
    q.close()
    assert Predictor.load(bundle, backend="numpy", state_dir=state).streams == ["default"]


def test_a_full_disk_keeps_predicting_and_counts_checkpoints_not_saved(bundle, small_disk, caplog):
    state = small_disk(64 * 1024)  # a real tmpfs, 64 KiB
    p = Predictor.load(bundle, backend="numpy", state_dir=state, checkpoint_every=5)
    _run(p, 5)
    first = (state / "state-dev1.npz").read_bytes()
    small_disk.fill(state)
    with caplog.at_level(logging.WARNING):
        assert _run(p, 20) == 20
        p.close()
    assert p.counters["disk"] == {"state_not_saved": 5}  # 4 periodic + the one at close
    assert (state / "state-dev1.npz").read_bytes() == first  # the last good checkpoint is untouched
    assert [f.name for f in state.iterdir() if f.name.startswith(".")] == []  # no half-written temp file
    assert len(caplog.records) == 1 and "No space left on device" in caplog.records[0].getMessage()


def test_a_read_only_state_dir_keeps_predicting_from_its_checkpoint(bundle, small_disk, caplog):
    state = small_disk(1024 * 1024)
    p = Predictor.load(bundle, backend="numpy", state_dir=state)
    _run(p)
    p.close()
    small_disk.read_only(state)
    with caplog.at_level(logging.WARNING):
        q = Predictor.load(bundle, backend="numpy", state_dir=state, max_state_age=60)
        assert q.streams == ["default"] and _run(q) == 20
        q.close()
    assert q.counters["disk"] == {"state_not_saved": 1}
    assert len(caplog.records) == 1 and "Read-only file system" in caplog.records[0].getMessage()
