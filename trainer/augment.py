"""Augmentation of whole labelled recordings for small data (a few dozen recordings per class).

Each training batch of whole recordings (right-padded, the label on each recording's last reading) is
replaced by a randomly changed copy every epoch, so the network meets more variants of each recording than
the file holds (Um et al. 2017, "Data augmentation of wearable sensor data"; Le Guennec et al. 2016, "Data
augmentation for time series classification using convolutional neural networks"):

    jitter  Gaussian noise on every reading, sigma JITTER in scaled units (a noisier sensor)
    scale   each recording's channels multiplied by one factor each, N(1, SCALE) (a different gain)
    warp    the whole recording resampled to a random length, x U(1/WARP, WARP) (the same motion, faster
            or slower); the label moves to the new last reading
    crop    a random slice of at least CROP of the recording, cut at both ends (Le Guennec's window
            slicing; the label at the slice's last reading)

Only training batches change: validation and test recordings are streamed as they are, from a reset,
judged at their own last reading, as the device runs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgernn.errors import ConfigError
from trainer.windows import Batch, no_target, pad

AUGMENTS = ("jitter", "scale", "warp", "crop")
JITTER = 0.03
SCALE = 0.1
WARP = 1.25
CROP = 0.9


def parse_augment(spec: str) -> tuple[str, ...]:
    """'none' -> (); "jitter,scale" -> ("jitter", "scale"); a ConfigError names an unknown kind."""
    kinds = tuple(k.strip() for k in spec.split(",") if k.strip())
    if kinds in ((), ("none",)):
        return ()
    bad = [k for k in kinds if k not in AUGMENTS]
    if bad:
        raise ConfigError(f"unknown augmentation {bad[0]!r}; use 'none' or a comma list of {', '.join(AUGMENTS)}")
    return tuple(dict.fromkeys(kinds))


def augmented(batches: Iterator[Batch], kinds: tuple[str, ...], rng: np.random.Generator) -> Iterator[Batch]:
    """Each batch of whole recordings changed by `kinds` (see the module docstring); token inputs pass."""
    for b in batches:
        yield augment_batch(b, kinds, rng) if kinds and b.x.dtype.kind == "f" else b


def augment_batch(batch: Batch, kinds: tuple[str, ...], rng: np.random.Generator) -> Batch:
    """One batch (B, T, C), each row a recording with its label on its last masked reading."""
    xs, ys, masks = [], [], []
    for x, y, mask in zip(batch.x, batch.y, batch.mask, strict=True):
        counted = np.flatnonzero(mask)
        if len(counted) == 0:  # nothing to learn from this row; keep it as it is
            xs.append(x)
            ys.append(y)
            masks.append(mask)
            continue
        n = int(counted[-1]) + 1  # the recording's length: its label sits on its last reading
        every = len(counted) > 1  # the label counted at every reading (recording_loss "every")
        label = y[n - 1]
        r = x[:n]  # (n, C)
        if "crop" in kinds and n >= 4:
            keep = max(2, int(np.ceil(n * rng.uniform(CROP, 1.0))))
            start = int(rng.integers(0, n - keep + 1))
            r = r[start : start + keep]
        if "warp" in kinds and len(r) >= 2:
            m = max(2, round(len(r) * float(np.exp(rng.uniform(-np.log(WARP), np.log(WARP))))))
            src = np.linspace(0.0, len(r) - 1.0, m)
            r = np.stack([np.interp(src, np.arange(len(r)), r[:, c]) for c in range(r.shape[1])], axis=1)
        r = np.asarray(r, np.float32)
        if "scale" in kinds:
            r = r * rng.normal(1.0, SCALE, (1, r.shape[1])).astype(np.float32)
        if "jitter" in kinds:
            r = r + rng.normal(0.0, JITTER, r.shape).astype(np.float32)
        m = len(r)
        yy = np.full((m, *y.shape[1:]), no_target(y), y.dtype)
        mm = np.zeros(m, bool)
        if every:
            yy[:], mm[:] = label, True
        else:
            yy[-1], mm[-1] = label, True
        xs.append(r)
        ys.append(yy)
        masks.append(mm)
    return Batch(pad(xs), pad(ys, no_target(ys[0])), pad(masks))
