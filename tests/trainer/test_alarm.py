"""The alarm rule: calibrated on a few device-hours of validation scores, it keeps to its false alarms per
device-day on many device-days of fresh normal scores and still detects weak, persistent anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.alarm import alarm_state, calibrate_alarm, ewma

RATE = 1.0  # readings per second


def _scores(rng: np.random.Generator, n: int, episodes_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n,) as the device computes them for one target (|z| of a normal residual), and truth (n,):
    episodes of 120 readings where the residual is biased by 1.2 sigma (weak: 9 in 10 of their readings stay
    below the normal readings' 99th percentile, like a cold-room door left open)."""
    truth = np.zeros(n, np.int8)
    if episodes_every:
        for a in range(episodes_every // 2, n - 120, episodes_every):
            truth[a : a + 120] = 1
    return np.abs(rng.normal(1.2 * truth, 1.0)), truth


def _count(scores: np.ndarray, truth: np.ndarray, rule: dict) -> tuple[int, int, int]:
    """(false alarms, episodes, detected) of `rule` on one stream."""
    e = ewma(scores, rule["readings"], rule["start"])
    on = alarm_state(e, rule["threshold"], rule["clear"])
    t = truth.astype(bool)
    starts = on & ~np.concatenate([[False], on[:-1]])
    false = int((starts & ~t).sum())
    onsets = np.flatnonzero(t & ~np.concatenate([[False], t[:-1]]))
    detected = sum(bool(on[a : a + 120].any()) for a in onsets)
    return false, len(onsets), detected


def test_rule_keeps_its_false_alarm_rate_beyond_the_validation_it_saw() -> None:
    rng = np.random.default_rng(0)
    val = [_scores(rng, 6 * 3600, episodes_every=1800) for _ in range(4)]  # one device-day, 48 episodes
    rule = calibrate_alarm([s for s, _ in val], [t for _, t in val], RATE, per_day=1.0)
    assert rule["rule"] == "ewma" and rule["readings"] > 1  # one reading is too weak a witness here
    assert rule["threshold"] > rule["clear"] and rule["false_alarms_per_day"] == 1.0
    assert rule["validation"]["episodes"] == 48 and rule["validation"]["detected"] >= 0.9
    # 20 fresh device-days of normal scores: at most one false alarm a day
    false = sum(_count(*_scores(rng, 86400), rule)[0] for _ in range(20))
    assert false <= 20, false
    # fresh anomalies: >= 90% of episodes detected
    counts = [_count(*_scores(rng, 6 * 3600, episodes_every=1800), rule) for _ in range(4)]
    episodes, detected = sum(c[1] for c in counts), sum(c[2] for c in counts)
    assert detected >= 0.9 * episodes, (detected, episodes)
    # the per-reading flag at 1% of readings, for comparison: hundreds of alarms a day
    s, t = _scores(rng, 86400)
    q = float(np.quantile(s, 0.99))
    assert _count(s, t, {"readings": 1, "start": 0.0, "threshold": q, "clear": q})[0] > 100


def test_without_labelled_onsets_the_rule_smooths_over_ten_seconds() -> None:
    rng = np.random.default_rng(1)
    val = [_scores(rng, 3600) for _ in range(2)]
    rule = calibrate_alarm([s for s, _ in val], [None, None], 10.0, 2.0)  # 10 readings/s, no anomaly column
    assert rule["readings"] == 100 and rule["validation"]["episodes"] == 0
    assert rule["threshold"] >= max(ewma(s, 100, rule["start"]).max() for s, _ in val)  # above all normal seen


@pytest.mark.parametrize("n", [1, 7])
def test_ewma_skips_readings_without_a_score(n: int) -> None:
    s = np.array([1.0, np.nan, 3.0])
    e = ewma(s, n, 0.0)
    a = 1.0 / n
    assert e[0] == pytest.approx(a) and e[1] == e[0] and e[2] == pytest.approx(e[0] + a * (3.0 - e[0]))


def test_the_training_summary_says_what_is_anomaly_follows() -> None:
    """Without a rule: the per-reading flag, with how many readings a healthy 10 Hz device-day flags; with one:
    the rule and the validation it was calibrated on."""
    from trainer.report import alarm_lines

    flag = {"anomaly": {"threshold": 2.05, "false_alarm_rate": 0.01}}
    (line,) = alarm_lines(flag, 10.0)
    assert "one reading's score >= 2.05" in line and "up to 8640 flagged readings per healthy device-day" in line
    assert "--false-alarms-per-day 1 sets an alarm rule" in line
    rule = {"readings": 100, "threshold": 1.269, "clear": 1.001, "false_alarms_per_day": 1.0,
            "validation": {"detected": 0.9, "episodes": 10, "device_days": 0.156}}  # fmt: skip
    (line,) = alarm_lines({"anomaly": flag["anomaly"] | {"alarm": rule}}, 10.0)
    assert line == (
        "is_anomaly: the alarm rule, score smoothed over 100 readings >= 1.269 (cleared below 1.001), for 1 false "
        "alarms per device-day; calibrated on 0.156 normal validation device-days, 90% of 10 validation episodes "
        "detected"
    )
    assert alarm_lines({}, 10.0) == []
