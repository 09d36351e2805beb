"""The anomaly alarm rule, calibrated for a false-alarm rate per device-day on the streaming validation scores.

A per-reading threshold set at a false-alarm rate per *reading* raises hundreds of alarms a day on a 10 Hz
sensor (0.01 x 864,000 readings), and one reading's forecast residual is weak evidence of a slow or small
fault (a door left open warms a cold room by a few hundredths of a degree per reading). So the alarm
smooths the score the device publishes, s_t, and compares the smoothed score with its own threshold:

    e_t = e_{t-1} + (s_t - e_{t-1}) / N        EWMA over N readings (N = 1: the score itself)
    an alarm starts when e_t >= threshold, and lasts until e_t < clear (hysteresis: an EWMA hovering at the
    threshold is one alarm, not a burst of them)

Calibration, on the validation split streamed as the device streams it (scores from reading `warmup` on):

- the threshold for `per_day` false alarms per device-day: validation holds a few device-hours, so the rate
  of up-crossings is extrapolated from a high level u0 (the 0.95 quantile of e over normal readings) with an
  exponential tail fitted to the peaks of the excursions above it (peaks-over-threshold, as in SPOT,
  Siffer et al., KDD 2017): crossings(u) = crossings(u0) * exp(-(u - u0) / mean peak excess), solved for
  crossings(u) = per_day / SAFETY (an extrapolation from a few device-hours misses rare normal events:
  measured on the factory's cold rooms, the rate at the unguarded threshold was ~2.5x the fitted one);
  and never below top + (top - u0), top the highest normal e seen: a split of a few device-hours has not
  seen a day's rarest normal excursion (the factory's bearings, whose load changes every few minutes, crossed
  `top` a dozen times a device-day). clear = u0;
- N among a few time constants (1 reading to 60 s): the one that detects most validation anomaly episodes
  at its threshold (ties: the shorter detection delay, then the shorter N), or N = 10 s of readings when the
  split holds fewer than 3 labelled onsets or none is detected (nothing to choose by).

Readings labelled anomalous, and the 3 N readings after each episode (the EWMA still remembers it), are not
normal readings for the calibration; an episode under way at a stream's first reading does not count for
detection (its onset is not in the split).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TAIL_QUANTILE = 0.95  # u0: where the exponential tail is fitted from, and where an alarm clears
SAFETY = 10.0  # the tail is solved for per_day / SAFETY (see the module docstring)
SECONDS = (0.0, 2.0, 10.0, 30.0, 60.0)  # candidate smoothing, seconds of readings (0: one reading)
DEFAULT_SECONDS = 10.0  # without labelled validation anomalies to choose by
MIN_ONSETS = 3  # labelled anomaly onsets in the validation split needed to choose the smoothing by them


def ewma(s: np.ndarray, n: float, start: float) -> np.ndarray:
    """e (L,) of scores s (L,) over `n` readings, from `start`; a NaN score (no forecast yet) leaves e as it was."""
    a = 1.0 / max(n, 1.0)
    e = np.empty(len(s))
    v = start
    for i, x in enumerate(s.tolist()):
        if x == x:  # not NaN
            v += a * (x - v)
        e[i] = v
    return e


def calibrate_alarm(
    scores: list[np.ndarray], truth: list[np.ndarray | None], rate: float | None, per_day: float
) -> dict[str, Any]:
    """The alarm rule for `per_day` false alarms per device-day; scores (L,) per validation stream, NaN where
    not scored (warm-up), truth (L,) 0/1 or None (all normal)."""
    rate = float(rate) if rate and rate > 0 else 1.0
    normal_all = np.concatenate([s[np.isfinite(s) & (_t(t, len(s)) == 0)] for s, t in zip(scores, truth, strict=True)])
    start = float(normal_all.mean()) if len(normal_all) else 0.0
    onsets = sum(int((np.diff(np.asarray(t, np.int8)) > 0).sum()) for t in truth if t is not None)
    default = max(1, round(DEFAULT_SECONDS * rate))
    candidates = sorted({max(1, round(sec * rate)) for sec in SECONDS} | {default})
    tried = [_try(scores, truth, n, start, rate, per_day) for n in candidates]
    best = max(tried, key=lambda c: (c["detected"] or 0.0, -_or(c["delay_s"], math.inf), -c["readings"]))
    if onsets < MIN_ONSETS or not best["detected"]:  # too few labelled onsets to choose by: the default
        best = next(c for c in tried if c["readings"] == default)
    return {
        "rule": "ewma",
        "readings": best["readings"],
        "threshold": best["threshold"],
        "clear": best["clear"],
        "start": start,
        "false_alarms_per_day": per_day,
        "validation": {k: best[k] for k in ("detected", "episodes", "delay_s", "false_alarms", "device_days")},
        "tried": [{k: c[k] for k in ("readings", "threshold", "detected", "delay_s")} for c in tried],
    }


def _or(v: float | None, default: float) -> float:
    return default if v is None else v


def _t(t: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, np.int8) if t is None else np.asarray(t)


def _try(
    scores: list[np.ndarray], truth: list[np.ndarray | None], n: int, start: float, rate: float, per_day: float
) -> dict[str, Any]:
    es, normals = [], []
    for s, t in zip(scores, truth, strict=True):
        e = ewma(s, n, start)
        tt = _t(t, len(s)).astype(bool)
        after = np.zeros(len(s), bool)  # the EWMA's memory of an episode
        for end in np.flatnonzero(tt[:-1] & ~tt[1:]) + 1:
            after[end : end + 3 * n] = True
        es.append(e)
        normals.append(np.isfinite(s) & ~tt & ~after)
    threshold, clear, days = _threshold(es, normals, rate, per_day)
    det, episodes, delays, false = 0, 0, [], 0
    for e, t, ok in zip(es, truth, normals, strict=True):
        alarm = alarm_state(e, threshold, clear)
        false += int((alarm & ok & ~np.concatenate([[False], alarm[:-1]])).sum())
        tt = _t(t, len(e)).astype(bool)
        starts = np.flatnonzero(tt & ~np.concatenate([[True], tt[:-1]]))  # not one under way at reading 0
        for a in starts:
            b = a + int(np.argmin(tt[a:])) if not tt[a:].all() else len(tt)
            episodes += 1
            hit = np.flatnonzero(alarm[a:b])
            if len(hit):
                det += 1
                delays.append(hit[0] / rate)
    return {
        "readings": n,
        "threshold": threshold,
        "clear": clear,
        "detected": det / episodes if episodes else None,
        "episodes": episodes,
        "delay_s": float(np.median(delays)) if delays else None,
        "false_alarms": false,
        "device_days": days,
    }


def alarm_state(e: np.ndarray, threshold: float, clear: float) -> np.ndarray:
    """(L,) bool: on from e >= threshold until e < clear."""
    on, out = False, np.zeros(len(e), bool)
    for i, v in enumerate(e.tolist()):
        on = v >= threshold or (on and v >= clear)
        out[i] = on
    return out


def _threshold(
    es: list[np.ndarray], normals: list[np.ndarray], rate: float, per_day: float
) -> tuple[float, float, float]:
    """(threshold, clear, normal device-days seen): the level e crosses upwards `per_day` times a device-day."""
    vals = np.concatenate([e[ok] for e, ok in zip(es, normals, strict=True)])
    days = len(vals) / rate / 86400.0
    if not len(vals):
        return math.inf, math.inf, 0.0
    u0 = float(np.quantile(vals, TAIL_QUANTILE))
    peaks = []
    for e, ok in zip(es, normals, strict=True):
        above = (e > u0) & ok
        if not above.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
        peaks += [float(e[a:b].max()) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    top = float(vals.max())
    if not peaks or days <= 0:
        return 2 * top - u0, u0, days
    crossings = len(peaks) / days  # per device-day at u0
    beta = max(float(np.mean(peaks)) - u0, 1e-12)  # exponential tail: mean excess of the excursion peaks
    target = per_day / SAFETY
    u = u0 + beta * math.log(crossings / target) if crossings > target else u0
    return max(u, 2 * top - u0), u0, days
