"""Augmentation of whole recordings (`--augment`): training batches change, the label stays on each
recording's (new) last reading, validation and test recordings are left alone."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from edgernn.errors import ConfigError
from tests.trainer import synth
from trainer.augment import augment_batch, parse_augment
from trainer.fitting import fit
from trainer.windows import Batch, pad


def _batch() -> Batch:
    """Two recordings of 40 and 12 readings, 2 channels, labels 1 and 2 on their last readings."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(12, 2)).astype(np.float32)]
    ys = [np.full(40, -1, np.int64), np.full(12, -1, np.int64)]
    ys[0][-1], ys[1][-1] = 1, 2
    return Batch(pad(xs), pad(ys, -1), pad([y >= 0 for y in ys]))


@pytest.mark.parametrize("kinds", [("warp",), ("crop",), ("jitter", "scale", "warp", "crop")])
def test_the_label_moves_to_each_recordings_new_last_reading(kinds: tuple[str, ...]) -> None:
    rng = np.random.default_rng(1)
    lengths = set()
    for _ in range(20):
        b = augment_batch(_batch(), kinds, rng)
        for row, label in zip(range(2), (1, 2), strict=True):
            counted = np.flatnonzero(b.mask[row])
            assert len(counted) == 1  # still judged at one reading: the recording's last
            n = int(counted[0]) + 1
            assert b.y[row, n - 1] == label
            assert np.all(b.y[row, n:] == -1) and np.all(b.x[row, n:] == 0)  # padding after the end
            lengths.add((row, n))
    got = {n for row, n in lengths if row == 0}
    assert len(got) > 3  # the recording of 40 readings came out at several lengths
    assert max(got) <= (50 if "warp" in kinds else 40) and min(got) >= (32 if "warp" in kinds else 36) - 4


def test_jitter_and_scale_keep_the_length_and_change_the_values() -> None:
    b0 = _batch()
    b = augment_batch(b0, ("jitter", "scale"), np.random.default_rng(2))
    np.testing.assert_array_equal(b.mask, b0.mask)
    np.testing.assert_array_equal(b.y, b0.y)
    diff = b.x[0] - b0.x[0]
    assert 0.01 < float(np.std(diff)) < 0.5  # changed, but the same signal
    ratio = np.median(b.x[0] / b0.x[0], axis=0)  # (C,): one gain per channel
    assert np.all(np.abs(ratio - 1.0) < 0.5)


def test_the_loss_on_every_reading_counts_every_reading_of_the_new_length() -> None:
    b0 = _batch()
    b0.y[0, :40], b0.mask[0, :40] = 1, True
    b = augment_batch(b0, ("warp",), np.random.default_rng(3))
    n = int(np.flatnonzero(b.mask[0])[-1]) + 1
    assert b.mask[0, :n].all() and np.all(b.y[0, :n] == 1)


def test_unknown_kinds_and_streams_are_refused_with_what_is_allowed(tmp_path: Path) -> None:
    assert parse_augment("none") == () and parse_augment("crop, jitter") == ("crop", "jitter")
    with pytest.raises(ConfigError, match=r"unknown augmentation 'flip'; use 'none' or a comma list of jitter"):
        parse_augment("jitter,flip")
    with pytest.raises(ConfigError, match="unknown augmentation 'flip'"):
        fit(synth.recordings_frame(per_class=4, seed=1), task="classify", target="activity", series_column="rec",
            out=tmp_path / "run0", epochs=1, augment="flip", progress=False, verbose=False)  # fmt: skip
    df = synth.motion_frame(devices=2, readings=600, seed=0)  # activities change within a device: a stream
    with pytest.raises(ConfigError, match="trains as streams: use 'none'"):
        fit(df, task="classify", target="activity", time_column="t", series_column="device", window=50,
            out=tmp_path / "run", epochs=1, augment="jitter", progress=False, verbose=False)  # fmt: skip


def test_recordings_train_with_augmentation_and_the_summary_says_which(tmp_path: Path) -> None:
    df = synth.recordings_frame(per_class=6, lengths=(8, 30), seed=5)
    fit(df, task="classify", target="activity", series_column="rec", time_column="t", out=tmp_path / "run",
        hidden=8, epochs=3, augment="warp,crop", progress=False, verbose=False)  # fmt: skip
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["training"]["augment"] == ["warp", "crop"]


def test_the_plateau_schedule_halves_the_learning_rate_when_validation_stalls(tmp_path: Path) -> None:
    df = synth.recordings_frame(per_class=6, lengths=(8, 30), seed=5)
    result = fit(df, task="classify", target="activity", series_column="rec", time_column="t", out=tmp_path / "run",
                 hidden=8, epochs=30, patience=8, lr=3e-2, lr_schedule="plateau", progress=False,
                 verbose=False)  # fmt: skip
    rates = [h["lr"] for h in result.history]
    assert rates[0] == pytest.approx(3e-2)
    assert min(rates) < 3e-2 and min(rates) >= 3e-2 / 64  # lowered after a stall of 8 // 4 = 2 epochs, floored
    for a, b in itertools.pairwise(rates):
        assert b == pytest.approx(a) or b == pytest.approx(a / 2)  # only ever halved
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["training"]["lr_schedule"] == "plateau"
    with pytest.raises(ConfigError, match="unsupported lr_schedule 'cosine'; supported: none, plateau"):
        fit(df, task="classify", target="activity", series_column="rec", out=tmp_path / "run2", epochs=1,
            lr_schedule="cosine", progress=False, verbose=False)  # fmt: skip
