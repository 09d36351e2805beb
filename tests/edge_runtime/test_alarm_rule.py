"""The anomaly alarm rule on the device: with `output.anomaly.alarm` in the manifest, `is_anomaly` is the rule's
state (the score smoothed per stream, raised at `threshold`, held until `clear`), the same on every stepping
path and in the bulk-rendered JSON, carried across a checkpoint and cleared by a reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime import Predictor
from edge_runtime.bundle.loader import Bundle
from edge_runtime.cli.inspect import summary
from edge_runtime.stream.render import render_batch
from tests.edge_runtime.conftest import OFFSET, SCALE, make_model, numpy_bundle
from trainer.alarm import alarm_state, ewma

IDS = ["a", "b", "c"]
TICKS = 240
READINGS = 8  # the rule's smoothing


def _readings(seed: int = 0) -> np.ndarray:
    """(K, N, C) raw readings; every stream's `ax` jumps for a stretch (an anomaly the residuals show)."""
    x = np.random.default_rng(seed).normal(OFFSET, np.asarray(SCALE) * 0.3, size=(TICKS, len(IDS), 4))
    x[80:120, :, 0] += 2.0
    x[170:200, 1, 0] -= 2.0
    return x


def _bundle(tmp_path: Path, alarm: dict[str, Any] | None) -> Path:
    anomaly: dict[str, Any] = {"threshold": 1.5, "sigma": [0.5, 2.0]}
    if alarm is not None:
        anomaly["alarm"] = alarm
    output = {"targets": ["ax", "temp"], "horizon": 1, "anomaly": anomaly}
    name = "rule" if alarm else "plain"
    return numpy_bundle(tmp_path / name, make_model(task="anomaly", output_size=2), task="anomaly", output=output)


def _rule(tmp_path: Path) -> tuple[Path, dict[str, Any], np.ndarray]:
    """A bundle whose rule raises and clears several alarms on `_readings`, the rule, and the scores (K, N)."""
    x = _readings()
    plain = Predictor.load(_bundle(tmp_path, None), backend="numpy", verify=False)
    # (K, N) NaN at the first reading: no forecast yet
    scores = np.array(
        [[np.nan if p is None else p.anomaly for p in plain.step_many(x[k], IDS, float(k))] for k in range(TICKS)],
        dtype=np.float64,
    )
    start = float(np.nanmean(scores))
    e = np.concatenate([ewma(scores[:, i], READINGS, start) for i in range(len(IDS))])
    threshold, clear = float(np.quantile(e, 0.85)), float(np.quantile(e, 0.6))
    rule = {"rule": "ewma", "readings": READINGS, "threshold": threshold, "clear": clear, "start": start}
    return _bundle(tmp_path, rule), rule, scores


def _flags(preds: list[Any]) -> list[bool | None]:
    return [None if p is None else p.is_anomaly for p in preds]


def test_is_anomaly_is_the_alarm_rule_on_every_stepping_path(tmp_path: Path) -> None:
    bundle, rule, scores = _rule(tmp_path)
    x = _readings()
    # what the rule says of these scores (trainer.alarm, as `train` calibrated it): alarms that last
    want = np.stack(
        [alarm_state(ewma(scores[:, i], READINGS, rule["start"]), rule["threshold"], rule["clear"]) for i in range(3)],
        axis=1,
    )  # (K, N)
    assert (want[1:] & ~want[:-1]).sum() >= 2 and want.mean() < 0.5  # several alarms, each over many readings
    per_reading = scores >= 1.5  # the old flag: score >= threshold, one reading at a time
    assert (want[1:] != per_reading[1:]).sum() > 10

    one = Predictor.load(bundle, backend="numpy", verify=False)
    got_one = [_flags([one.step_one(x[k, i], float(k), s) for i, s in enumerate(IDS)]) for k in range(TICKS)]
    assert got_one[0] == [None] * 3  # no forecast yet, no score
    np.testing.assert_array_equal(np.array(got_one[1:], bool), want[1:])

    many = Predictor.load(bundle, backend="numpy", verify=False)
    batches = [many.step_many(x[k], IDS, float(k)) for k in range(TICKS)]
    np.testing.assert_array_equal(np.array([_flags(list(b)) for b in batches[1:]], bool), want[1:])
    rendered = [json.loads(r.payload(1)) for b in batches[1:] for r in render_batch(b, np.arange(3))]
    np.testing.assert_array_equal(np.array([r["is_anomaly"] for r in rendered]).reshape(-1, 3), want[1:])

    text = summary(Bundle.open(bundle).manifest, str(bundle))  # edgernn inspect says what is_anomaly follows
    assert f"alarm: score smoothed over {READINGS} readings >= " in text

    block = Predictor.load(bundle, backend="numpy", verify=False)
    b = block.step_block(x, IDS, np.arange(TICKS, dtype=float))
    flags = np.array([p.is_anomaly if p is not None and p.anomaly is not None else False for p in b]).reshape(-1, 3)
    np.testing.assert_array_equal(flags[1:], want[1:])


def test_the_alarm_state_survives_a_restart_and_a_reset_clears_it(tmp_path: Path) -> None:
    bundle, _, _ = _rule(tmp_path)
    x = _readings()
    whole = Predictor.load(bundle, backend="numpy", verify=False)
    ref = [_flags(list(whole.step_many(x[k], IDS, float(k)))) for k in range(TICKS)]
    assert any(ref[100])  # mid-episode: an alarm is up when the device restarts

    state = tmp_path / "state"
    first = Predictor.load(bundle, backend="numpy", verify=False, state_dir=state)
    for k in range(100):
        first.step_many(x[k], IDS, float(k))
    first.save_state()
    first.close()
    second = Predictor.load(bundle, backend="numpy", verify=False, state_dir=state)
    got = [_flags(list(second.step_many(x[k], IDS, float(k)))) for k in range(100, TICKS)]
    assert got == ref[100:]

    second.reset("a")
    assert np.isnan(second.table.alarm_e[second.table.slot["a"]])
    assert not second.table.alarm_on[second.table.slot["a"]]
