"""The capped held-out sample of the test split (`heldout.npz`): raw readings and per-reading targets.

Streams keep their first readings contiguously (a device starts from a reset and runs on), up to
`max_readings` in all; independent sequences are taken whole, in order, until the cap is reached.
"""

from __future__ import annotations

import numpy as np

from trainer.checkpoint import Heldout
from trainer.prep import Part, Prepared
from trainer.tasks import task_for
from trainer.windows import no_target, pad

MAX_STREAMS = 64
MAX_CONTEXT = 4096  # readings of history kept per stream for the baselines (`Heldout.context`)


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
    x = pad([test.series[i].x[:k] for i, k in picks])
    y = pad([test.y_raw[i][:k] for i, k in picks], no_target(test.y_raw[0]))
    truth = [test.series[i].anomaly for i, _ in picks]
    anomaly = None
    if any(a is not None for a in truth):  # a stream without ground truth counts as all normal
        rows = zip(truth, (k for _, k in picks), strict=True)
        anomaly = pad([a[:k] if a is not None else np.zeros(k, np.int8) for a, k in rows])
    lengths = np.array([k for _, k in picks], dtype=np.int64)
    return Heldout(
        x=x,
        y=y,
        anomaly=anomaly,
        lengths=None if (lengths == length).all() else lengths,
    )


def history(prep: Prepared, heldout: Heldout) -> np.ndarray | None:
    """(S, Lc, n_targets) raw targets of each held-out stream's series before the test split (train, then
    validation), NaN-padded at the front; None for classify / generate or when recordings are split whole
    (a held-out recording then has no history of its own)."""
    if not task_for(prep.task).forecasts or prep.bounds.get("by", "").startswith("recording"):
        return None
    before: dict[str, list[np.ndarray]] = {}
    for part in (prep.train, prep.val):
        for s in part.series:
            if s.target is not None:
                before.setdefault(s.name, []).append(s.target)
    n_t = len(prep.table.targets)
    rows = []
    for s in prep.test.series[: len(heldout.x)]:
        parts = before.get(s.name, [])
        rows.append(np.concatenate(parts)[-MAX_CONTEXT:] if parts else np.zeros((0, n_t), np.float32))
    length = max((len(r) for r in rows), default=0)
    ctx = np.full((len(rows), length, n_t), np.nan, np.float32)
    for i, r in enumerate(rows):
        if len(r):
            ctx[i, length - len(r) :] = r
    return ctx
