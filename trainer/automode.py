"""`--target-mode auto`: level or delta, chosen on the validation split streamed as the device runs it.

The rule, in order:
1. delta needs every target among the input features (the reading is the level it adds back); otherwise level.
2. delta when the validation split has already moved away from the training level (its mean more than
   DRIFT_STDS training standard deviations from the training mean, for any target): the series drifts, and a
   level model's validation score will not hold for readings further out, which lie beyond its range.
3. otherwise level, unless delta's validation errors are lower by a margin that a paired test calls real:
   the Diebold-Mariano test (Diebold & Mariano 1995) on the per-reading absolute errors, with the small-sample
   correction of Harvey, Leybourne & Newbold (1997) and Student's t with n - 1 degrees of freedom, one-sided
   at ALPHA. Without drift, level is the default: a delta model trains on windows moved by random levels
   (`trainer.epochs._shifted`), so it cannot see where the series' mean lies and cannot learn to revert to
   it, which is what a level model of a stationary cycle does best. A few dozen validation readings (Lynx:
   17) often favour either model by chance; only a clear win should move auto off the default.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DRIFT_STDS = 1.0  # see rule 2
ALPHA = 0.05  # see rule 3: delta must beat level at this one-sided significance on a stationary validation split


def choose_mode(
    errors: dict[str, np.ndarray],
    horizon: int,
    train_target: np.ndarray | None = None,
    val_target: np.ndarray | None = None,
) -> dict[str, Any]:
    """`errors`: candidate -> (N,) mean absolute error of each scored validation reading (raw units, NaN where
    unscored), the same readings for every candidate; `train_target` / `val_target`: (N, n_targets) raw target
    readings of the two splits. Returns {"chosen", "why", "validation_mae", and for two candidates "test"}."""
    maes = {tm: _mean(e) for tm, e in errors.items()}
    if len(errors) == 1:
        only = next(iter(errors))
        return {"chosen": only, "why": "delta needs every target among the input features", "validation_mae": maes}
    scores = f"validation MAE {maes['level']:.4g} (level) vs {maes['delta']:.4g} (delta), streaming"
    stat, p = diebold_mariano(errors["level"], errors["delta"], horizon)
    test = {"name": "Diebold-Mariano (HLN), one-sided: delta better", "statistic": stat, "p_value": p, "alpha": ALPHA}
    moved = level_moved(train_target, val_target) if train_target is not None and val_target is not None else 0.0
    if moved > DRIFT_STDS:
        chosen = "delta"
        why = f"the validation split drifted {moved:.1f} training std from the training mean ({scores})"
    elif p < ALPHA:
        chosen = "delta"
        why = f"no drift ({moved:.1f} training std), and delta wins clearly: {scores}; paired test p = {p:.3g}"
    else:
        chosen = "level"
        better = "delta's lead is not significant" if maes["delta"] < maes["level"] else "level is no worse"
        why = f"no drift ({moved:.1f} training std), and {better}: {scores}; paired test p = {p:.3g}"
    return {"chosen": chosen, "why": why, "validation_mae": maes, "drift_std": moved, "test": test}


def level_moved(train: np.ndarray, val: np.ndarray) -> float:
    """How far (training std) the validation split's mean target level lies from the training one, the largest
    over targets. train, val: (N, n_targets) raw target readings."""
    train, val = np.asarray(train, np.float64), np.asarray(val, np.float64)
    sd = train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return float(np.max(np.abs(val.mean(axis=0) - train.mean(axis=0)) / sd))


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> tuple[float, float]:
    """(statistic, one-sided p-value) of "b has lower expected loss than a", from paired per-reading losses (N,).

    d = loss_a - loss_b; its long-run variance counts autocovariances up to lag horizon - 1 (h-step forecasts
    made at consecutive readings overlap); the HLN factor corrects the statistic for small N, and the p-value
    is Student's t with N - 1 degrees of freedom."""
    d = np.asarray(loss_a, np.float64) - np.asarray(loss_b, np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n < 3:
        return 0.0, 1.0
    mean = float(d.mean())
    c = d - mean
    h = max(1, min(horizon, n - 1))
    var = float(c @ c) / n + 2.0 * sum(float(c[k:] @ c[:-k]) / n for k in range(1, h))
    if var <= 1e-300:  # identical or constant differences: the sign decides
        return (math.inf, 0.0) if mean > 0 else ((-math.inf, 1.0) if mean < 0 else (0.0, 1.0))
    stat = mean / math.sqrt(var / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return stat, student_t_sf(stat, n - 1)


def student_t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (numerical integration of the density: the
    trainer needs no SciPy for one tail probability)."""
    if not math.isfinite(t):
        return 0.0 if t > 0 else 1.0
    a = min(abs(t), 60.0)
    x = np.linspace(0.0, a, 4001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    half = float(np.sum((pdf[1:] + pdf[:-1]) * np.diff(x)) / 2)  # P(0 < T < |t|)
    sf = max(0.0, 0.5 - half)
    return sf if t >= 0 else 1.0 - sf


def _mean(e: np.ndarray) -> float:
    e = np.asarray(e, np.float64)
    return float(np.nanmean(e)) if np.isfinite(e).any() else float("inf")
