"""The capped held-out sample of the test split (`heldout.npz`): raw readings and per-reading targets.

Streams keep their first readings contiguously (a device starts from a reset and runs on), up to
`max_readings` in all; independent sequences are taken whole, in order, until the cap is reached.
"""

from __future__ import annotations

import numpy as np

from trainer.checkpoint import Heldout
from trainer.prep import Part

MAX_STREAMS = 64


def build_heldout(test: Part, *, streams: bool, max_readings: int, min_length: int) -> Heldout:
    """`min_length`: no stream is cut shorter than this (it must outlast the warm-up to be scored)."""
    if streams:
        n = min(len(test.series), MAX_STREAMS)
        cap = max(max_readings // max(n, 1), min_length)
        picks = [(i, min(len(test.series[i]), cap)) for i in range(n)]
    else:
        picks, total = [], 0
        for i, s in enumerate(test.series):
            if picks and total + len(s) > max_readings:
                break
            picks.append((i, len(s)))
            total += len(s)
    length = max(k for _, k in picks)
    x0, y0 = test.series[0].x, test.y_raw[0]
    x = np.zeros((len(picks), length, *x0.shape[1:]), dtype=x0.dtype)
    y = np.full((len(picks), length, *y0.shape[1:]), -1 if y0.dtype.kind == "i" else np.nan, dtype=y0.dtype)
    has_truth = any(test.series[i].anomaly is not None for i, _ in picks)
    anomaly = np.zeros((len(picks), length), dtype=np.int8) if has_truth else None
    for r, (i, k) in enumerate(picks):
        s = test.series[i]
        x[r, :k] = s.x[:k]
        y[r, :k] = test.y_raw[i][:k]
        if anomaly is not None and s.anomaly is not None:
            anomaly[r, :k] = s.anomaly[:k]
    lengths = np.array([k for _, k in picks], dtype=np.int64)
    return Heldout(
        x=x,
        y=y,
        anomaly=anomaly,
        lengths=None if (lengths == length).all() else lengths,
    )
