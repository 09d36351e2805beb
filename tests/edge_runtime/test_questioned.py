"""`Predictor.questioned`: the one verdict on which readings the runtime questions, true to step_one/step_many.

A simulator (or a gateway) that routes the questioned readings to `step_one` asks the runtime instead of
re-deriving its widened ranges and time rules; this checks the verdict against what the steps then do.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_runtime import Predictor
from tests.edge_runtime.conftest import OFFSET

T0 = time.time() - 3600.0  # an hour ago: every reading below is within the future bound unless meant not to be
# stream -> (reading, time): one of each kind of problem, and clean ones (the model's ranges: ax in [-3, 3]
# widened by one span to [-9, 9]; the gap 10 periods = 1 s; the future bound a day ahead of the host's clock)
CASES = {
    "clean": ([0.5, 1.0, -2.0, 20.0], T0 + 0.1),
    "edge": ([8.9, 1.0, -2.0, 20.0], T0 + 0.1),  # out of the training range, inside the widened one
    "far": ([100.0, 1.0, -2.0, 20.0], T0 + 0.1),
    "nan": ([float("nan"), 1.0, -2.0, 20.0], T0 + 0.1),
    "huge": ([0.0, 1.0, -2.0, 1e39], T0 + 0.1),  # not a float32 once scaled
    "gap": (OFFSET, T0 + 5.0),
    "late": (OFFSET, T0 + 1.0),  # exactly the max gap: not a gap
    "back": (OFFSET, T0 - 0.5),
    "clock_step": (OFFSET, T0 - 60.0),
    "inf_time": (OFFSET, float("inf")),
    "nan_time": (OFFSET, float("nan")),
    "future": (OFFSET, time.time() + 30 * 86400.0),
}
QUESTIONED = {"far", "nan", "huge", "gap", "back", "clock_step", "inf_time", "nan_time", "future"}


def _primed(bundle: Path) -> Predictor:
    p = Predictor.load(bundle, backend="numpy")
    p.step_many(np.tile(OFFSET, (len(CASES), 1)), list(CASES), t=T0)  # every stream's last time: T0
    return p


def test_questioned_names_the_readings_step_many_and_step_one_question(gru_bundle: Path) -> None:
    p = _primed(gru_bundle)
    x = np.array([r for r, _ in CASES.values()], np.float64)  # (N, C)
    t = np.array([t for _, t in CASES.values()])  # (N,)
    verdict = p.questioned(x, t - T0, t)
    assert {s for s, q in zip(CASES, verdict.tolist(), strict=True) if q} == QUESTIONED

    batch = p.step_many(x, list(CASES), t=t)
    touched = {s for i, s in enumerate(CASES) if batch[i] is None or batch[i].flags}  # type: ignore[union-attr]
    assert touched == QUESTIONED
    one = _primed(gru_bundle)
    touched = set()
    for s, (r, ts) in CASES.items():
        pred = one.step_one(r, t=ts, stream=s)
        if pred is None or pred.flags:
            touched.add(s)
    assert touched == QUESTIONED


def test_questioned_takes_blocks_and_a_first_reading_is_not_a_gap(gru_bundle: Path) -> None:
    p = Predictor.load(gru_bundle, backend="numpy")
    x = np.tile(OFFSET, (3, 2, 1)).astype(float)  # (K, N, C)
    x[2, 1, 0] = -50.0
    dt = np.full((3, 2), 0.1)
    dt[0] = np.nan  # no reading yet
    got = p.questioned(x, dt)
    assert got.shape == (3, 2)
    assert got.tolist() == [[False, False], [False, False], [False, True]]
