"""step_block: K ticks in one call give what K step_many calls give, on the plain path and on every fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime import Policies, Predictor
from edge_runtime.stream.batch import PredictionBatch
from edgernn.errors import ConfigError
from tests.edge_runtime.conftest import OFFSET, SCALE, make_model, numpy_bundle

IDS = ["a", "b", "c", "d", "e", "f"]


def _readings(ticks: int, seed: int = 0) -> np.ndarray:
    """(K, N, C) raw readings well inside the bundle's ranges."""
    return np.random.default_rng(seed).normal(OFFSET, np.asarray(SCALE) * 0.5, size=(ticks, len(IDS), 4))


def _compare(block: PredictionBatch, ticks: list[PredictionBatch]) -> None:
    """Entry k * N + i of the block is entry i of tick k, field by field (floats to float32 rounding)."""
    n = len(IDS)
    assert len(block) == n * len(ticks)
    for k, tick in enumerate(ticks):
        for i in range(n):
            got, ref = block[k * n + i], tick[i]
            if ref is None:
                assert got is None
                continue
            assert got is not None
            g, r = got.to_dict(), ref.to_dict()
            for key in ("latency_us",):
                g.pop(key), r.pop(key)
            for key in ("values", "probability", "anomaly", "interval"):
                if r.get(key) is not None:
                    np.testing.assert_allclose(np.asarray(g.pop(key), float), np.asarray(r.pop(key), float), atol=1e-6)
            assert g == r, (k, i)


def _pair(bundle: Path, **kw: Any) -> tuple[Predictor, Predictor]:
    return Predictor.load(bundle, backend="numpy", **kw), Predictor.load(bundle, backend="numpy", **kw)


INVERSE = {"kind": "standard", "offset": [OFFSET[0], OFFSET[3]], "scale": [SCALE[0], SCALE[3]]}
FORECAST = {"targets": ["ax", "temp"], "inverse": INVERSE, "interval": {"level": 0.9, "half_width": [0.5, 1.0]}}
ANOMALY = {
    "targets": ["ax", "temp"],
    "inverse": INVERSE,
    "anomaly": {"threshold": 1.0, "false_alarm_rate": 0.01, "score": "forecast-residual", "sigma": [0.5, 2.0]},
}


@pytest.mark.parametrize(
    ("task", "output", "cell"), [("classify", None, "gru"), ("forecast", FORECAST, "lstm"), ("anomaly", ANOMALY, "rnn")]
)
def test_a_block_gives_what_its_ticks_give(tmp_path: Path, task: str, output: Any, cell: str) -> None:
    model = make_model(cell=cell, output_size=3 if task == "classify" else 2, task=task)
    bundle = numpy_bundle(tmp_path / "b", model, task=task, output=output, warmup=3)
    blocked, ticked = _pair(bundle)
    x = _readings(25)
    times = 100.0 + 0.1 * np.arange(25)
    # blocks of 1, 4, 10 and 10 ticks against one step_many per tick
    got, ref = [], []
    for a, b in [(0, 1), (1, 5), (5, 15), (15, 25)]:
        got.append(blocked.step_block(x[a:b], IDS, times[a:b]))
        ref.append([ticked.step_many(x[k], IDS, t=float(times[k])) for k in range(a, b)])
    for g, r in zip(got, ref, strict=True):
        _compare(g, r)
    warming = [made for made in got[0] if made is not None and "warming_up" in made.flags]
    assert len(warming) == len(IDS)  # the first tick is inside the warm-up of 3 readings, flagged
    assert blocked.counters == ticked.counters
    last = blocked.step_many(x[0], IDS, t=200.0)  # the state carried on from the blocks is the ticks' state
    _compare(last, [ticked.step_many(x[0], IDS, t=200.0)])


def test_a_block_with_a_bad_reading_or_a_gap_is_stepped_tick_by_tick(gru_bundle: Path) -> None:
    blocked, ticked = _pair(gru_bundle)
    x = _readings(12)
    x[3, 2, 1] = np.nan  # missing: held from the last good value
    x[7, 4, 0] = 1e6  # out of range
    times = np.tile(10.0 + 0.1 * np.arange(12)[:, None], (1, len(IDS)))
    times[9, 1] += 60.0  # a gap: the state is reset by the default policy
    got = blocked.step_block(x, IDS, times)
    ref = [ticked.step_many(x[k], IDS, t=times[k]) for k in range(12)]
    _compare(got, ref)
    assert blocked.bad == ticked.bad and blocked.bad["non_finite"] == 1 and blocked.bad["out_of_range"] == 1
    assert blocked.bad["gap"] == 1
    assert blocked.counters == ticked.counters


def test_held_back_warm_up_is_stepped_tick_by_tick(tmp_path: Path) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model(), warmup=4)
    blocked, ticked = _pair(bundle, policies=Policies(warmup="hold"))
    x = _readings(10)
    times = 0.1 * np.arange(10)
    got = blocked.step_block(x, IDS, times)
    _compare(got, [ticked.step_many(x[k], IDS, t=float(times[k])) for k in range(10)])
    assert sum(p is None for p in got) == 4 * len(IDS)  # held back, as step_many holds them


def test_checkpoints_fall_after_the_same_tick(tmp_path: Path, gru_bundle: Path) -> None:
    blocked = Predictor.load(gru_bundle, backend="numpy", state_dir=tmp_path / "s1", checkpoint_every=4 * len(IDS))
    ticked = Predictor.load(gru_bundle, backend="numpy", state_dir=tmp_path / "s2", checkpoint_every=4 * len(IDS))
    x = _readings(10)
    blocked.step_block(x, IDS, 0.1 * np.arange(10))
    for k in range(10):
        ticked.step_many(x[k], IDS, t=0.1 * k)
    assert blocked.counters["checkpoints"] == ticked.counters["checkpoints"] == 2
    saved = [np.load(tmp_path / d / "state-dev1.npz") for d in ("s1", "s2")]
    np.testing.assert_allclose(saved[0]["state.h"], saved[1]["state.h"], atol=1e-6)  # after tick 8 in both
    np.testing.assert_allclose(saved[0]["last_t"], 0.7)  # the last reading in either checkpoint: tick 8's
    np.testing.assert_allclose(saved[1]["last_t"], 0.7)


def test_bad_block_shapes_are_refused_with_the_shape(gru_bundle: Path) -> None:
    p = Predictor.load(gru_bundle, backend="numpy")
    with pytest.raises(ConfigError, match=r"\(ticks, streams, 4\), got \(6, 4\)"):
        p.step_block(_readings(1)[0], IDS, [0.0])
    with pytest.raises(ConfigError, match="3 stream ids"):
        p.step_block(_readings(2), IDS[:3], [0.0, 0.1])
    with pytest.raises(ConfigError, match=r"one time per tick \(2,\) or per reading \(2, 6\), got \(3,\)"):
        p.step_block(_readings(2), IDS, [0.0, 0.1, 0.2])
    assert len(p.step_block(_readings(0), IDS, [])) == 0 and p.counters["readings"] == 0  # no ticks: nothing


def test_a_block_whose_only_bad_reading_is_a_nan_holds_it_and_counts_it(gru_bundle: Path) -> None:
    """A NaN fails every comparison: the range check must not let it onto the plain path (into the state)."""
    blocked, ticked = _pair(gru_bundle)
    x = _readings(6)
    x[2, 3, 1] = np.nan  # the one bad value in the block: in range elsewhere, no gap, no warm-up
    times = 10.0 + 0.1 * np.arange(6)
    got = blocked.step_block(x, IDS, times)
    _compare(got, [ticked.step_many(x[k], IDS, t=float(times[k])) for k in range(6)])
    assert blocked.bad == ticked.bad and {r: n for r, n in blocked.bad.items() if n} == {"non_finite": 1}
    entry = got[2 * len(IDS) + 3]
    assert entry is not None and entry.flags == ["held:ay"] and np.isfinite(entry.values).all()
    assert all(np.isfinite(a).all() for a in blocked.state("d"))  # the held value, not the NaN, reached the state
