"""The held-out readings a bundle carries for `edgernn simulate`: capped in size, each stream's first readings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from exporter.replay_readings import capped, write_replay
from trainer.checkpoint import Heldout


def _held(streams: int, length: int, lengths: list[int] | None = None) -> Heldout:
    x = np.arange(streams * length * 3, dtype=np.float32).reshape(streams, length, 3)  # (S, L, 3)
    y = np.arange(streams * length, dtype=np.int64).reshape(streams, length)  # (S, L)
    return Heldout(x=x, y=y, lengths=None if lengths is None else np.array(lengths, np.int64))


def test_under_the_cap_every_reading_travels(tmp_path: Path) -> None:
    held = _held(4, 100)
    section = write_replay(held, tmp_path, cap_bytes=1 << 20)
    back = Heldout.load(tmp_path / "heldout.npz")
    np.testing.assert_array_equal(back.x, held.x)
    np.testing.assert_array_equal(back.y, held.y)
    assert section["readings"] == 400 and section["streams"] == 4 and "trimmed_from" not in section
    assert section["sha256"] == hashlib.sha256((tmp_path / "heldout.npz").read_bytes()).hexdigest()


def test_over_the_cap_each_stream_keeps_its_first_readings(tmp_path: Path) -> None:
    held = _held(4, 1000, lengths=[1000, 300, 1000, 50])
    cap = 4 * 200 * (3 * 4 + 8)  # 200 readings per stream of 3 float32 features and an int64 label
    small = capped(held, cap)
    assert small.x.shape == (4, 200, 3) and small.lengths is not None
    assert small.lengths.tolist() == [200, 200, 200, 50]
    np.testing.assert_array_equal(small.x, held.x[:, :200])
    section = write_replay(held, tmp_path, cap_bytes=cap)
    assert section["readings"] == 650 and section["trimmed_from"] == 2350
    assert small.x.nbytes + small.y.nbytes <= cap
