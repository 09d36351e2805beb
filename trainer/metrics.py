"""Quality figures from per-reading model outputs (NumPy only, so the exporter scores artifacts identically).

`heldout_metrics(checkpoint, outputs, heldout)` is the one function that turns what a model emitted at each
held-out reading (logits or scaled forecasts, exactly as a step graph emits them) into the figures of the
training report. The trainer calls it on PyTorch stepped one reading at a time; the exporter calls it on
every artifact. Rows of `outputs` that are NaN mean "no output at this reading" (a window-mode model
before its window is full) and are skipped, as are the first `training["warmup"]` readings of each stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer import baselines
from trainer.checkpoint import Checkpoint, Heldout, Scaler

INTERVAL_LEVEL = 0.9
VERDICT_KEYS = ("baselines", "skill", "best_baseline", "beats_baselines", "warning")  # see `verdict`


def heldout_metrics(ckpt: Checkpoint, outputs: np.ndarray | list[np.ndarray], heldout: Heldout) -> dict[str, Any]:
    """outputs: (S, L, O) or a list of (L_i, O) per held-out stream, stepped from zero state."""
    task = ckpt.config.task
    warmup = int(ckpt.training.get("warmup", 0))
    ys = [heldout.stream(i)[1] for i in range(len(heldout.x))]  # without padding
    outs = [np.asarray(outputs[i], dtype=np.float64)[: len(y)] for i, y in enumerate(ys)]
    if task in ("classify", "generate"):
        result = classification_metrics(outs, ys, warmup, ckpt.config.output_size, perplexity=task == "generate")
        if ckpt.training.get("recordings"):
            result["accuracy_by_fraction"] = accuracy_by_fraction(outs, ys)
        return result
    assert ckpt.data.target_scaler is not None
    horizon = ckpt.config.horizon
    raw = [
        to_raw(o, ckpt.data.target_scaler, horizon, level_of(ckpt, heldout.stream(i)[0])) for i, o in enumerate(outs)
    ]
    season = ckpt.training.get("season")
    ctx = heldout.context
    base = [baselines.forecasts(y, None if ctx is None else ctx[i], horizon, season) for i, y in enumerate(ys)]
    if task == "forecast":
        half = (ckpt.head.get("interval") or {}).get("half_width")
        return forecast_metrics(raw, ys, warmup, horizon, half, base)
    anomaly = ckpt.head["anomaly"]
    truth = None
    if heldout.anomaly is not None and heldout.anomaly.size:
        truth = [heldout.anomaly[i][: len(y)] for i, y in enumerate(ys)]
    return anomaly_metrics(raw, ys, truth, warmup, anomaly["sigma"], anomaly["threshold"], base)


def level_of(ckpt: Checkpoint, x_raw: np.ndarray) -> np.ndarray | None:
    """Delta mode: (L, n_targets) each target's latest raw reading (the level added back); None otherwise."""
    if ckpt.data.target_mode != "delta":
        return None
    return np.asarray(x_raw, np.float64)[:, ckpt.data.level_index()]


def to_raw(out: np.ndarray, target_scaler: Scaler, horizon: int, level: np.ndarray | None = None) -> np.ndarray:
    """Scaled forecast outputs (L, horizon * n_targets) -> raw units; output k * n_targets + j is target j.

    `level` (L, n_targets): delta mode, the latest reading of each target, added to every step of the horizon.
    """
    n = len(out)
    per = out.reshape(n, horizon, -1) * np.asarray(target_scaler.scale) + np.asarray(target_scaler.offset)
    if level is not None:
        per = per + level[:, None, :]
    return per.reshape(n, -1)


def classification_metrics(
    outs: list[np.ndarray], ys: list[np.ndarray], warmup: int, classes: int, perplexity: bool = False
) -> dict[str, Any]:
    logits, labels = _gather(outs, ys, warmup)
    labels = labels.astype(np.int64)
    if not len(labels):
        return {"readings": 0}
    pred = logits.argmax(axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    f1 = []
    for c in range(classes):
        tp = np.sum((pred == c) & (labels == c))
        denom = np.sum(pred == c) + np.sum(labels == c)
        if np.sum(labels == c):
            f1.append(2 * tp / denom)
    ce = float(-logp[np.arange(len(labels)), labels].mean())
    result = {
        "readings": len(labels),
        "accuracy": float(np.mean(pred == labels)),
        "macro_f1": float(np.mean(f1)),
        "cross_entropy": ce,
    }
    if perplexity:
        result["perplexity"] = float(np.exp(min(ce, 50.0)))
    return result


def accuracy_by_fraction(outs: list[np.ndarray], ys: list[np.ndarray], steps: int = 10) -> dict[str, float]:
    """How early a recording's label becomes right: accuracy of the output after the first f of each
    recording's readings (streamed from a reset), for f = 0.1, 0.2, .. 1.0; 1.0 is the device's answer.

    outs (L_i, O) per recording; ys (L_i,) with the recording's class on its last reading (-1 elsewhere).
    """
    hits = np.zeros(steps)
    count = 0
    for out, y in zip(outs, ys, strict=True):
        labelled = np.flatnonzero(y >= 0)
        if not len(labelled):
            continue
        n = int(labelled[-1]) + 1  # the recording ends at its labelled reading
        at = np.ceil(np.arange(1, steps + 1) / steps * n).astype(int) - 1  # (steps,) reading index
        hits += out[at].argmax(axis=1) == y[n - 1]
        count += 1
    return {f"{(k + 1) / steps:.1f}": float(hits[k] / count) for k in range(steps)} if count else {}


def forecast_metrics(
    raw: list[np.ndarray],
    ys: list[np.ndarray],
    warmup: int,
    horizon: int,
    half_width: list[float] | None,
    base: list[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """MAE in raw units, next to each baseline's MAE on the same readings (`trainer.baselines`).

    base: per stream, baseline name -> (L, O) forecasts; None: persistence only, from the targets themselves.
    """
    if base is None:
        base = [baselines.forecasts(y, None, horizon, None) for y in ys]
        base = [{"persistence": b["persistence"]} for b in base]
    names = list(base[0]) if base else ["persistence"]
    preds, trues = [], []
    bases: dict[str, list[np.ndarray]] = {name: [] for name in names}
    start = max(warmup, 1)  # reading 0 of a stream has no persistence forecast unless a context gives one
    for out, y, b in zip(raw, ys, base, strict=True):
        preds.append(out[start:])
        trues.append(y[start:])
        for name in names:
            bases[name].append(b[name][start:])
    pred, true = np.concatenate(preds), np.concatenate(trues)
    fc = {name: np.concatenate(v) for name, v in bases.items()}
    ok = np.isfinite(true) & np.isfinite(pred).all(axis=1, keepdims=True) & np.isfinite(fc["persistence"])
    if not ok.any():
        return {"readings": 0}
    err = np.abs(pred - true)
    mae = float(err[ok].mean())
    maes = {name: float(np.abs(f - true)[ok].mean()) for name, f in fc.items()}
    result: dict[str, Any] = {
        "readings": int(ok.any(axis=1).sum()),
        "mae": mae,
        "mae_per_output": [float(err[ok[:, j], j].mean()) for j in range(err.shape[1])],
        "persistence_mae": maes["persistence"],
        "skill_vs_persistence": _skill(mae, maes["persistence"]),
        **verdict(mae, maes),
    }
    if half_width is not None:
        result["interval_coverage"] = float((err <= np.asarray(half_width))[ok].mean())
        result["interval_level"] = INTERVAL_LEVEL
    return result


def verdict(mae: float, maes: dict[str, float]) -> dict[str, Any]:
    """Baseline MAEs, the model's skill against each (1 - MAE / baseline MAE: > 0 beats it), the best one,
    and whether the model beats it; `warning` says what to try when it does not."""
    best = min(maes, key=lambda k: maes[k])
    beats = mae < maes[best]
    out: dict[str, Any] = {
        "baselines": dict(maes),
        "skill": {name: _skill(mae, v) for name, v in maes.items()},
        "best_baseline": best,
        "beats_baselines": bool(beats),
    }
    if not beats:
        name = best.replace("_", " ")
        out["warning"] = f"the model does not beat the {name} baseline: MAE {mae:.4g} vs {maes[best]:.4g}"
    return out


def _skill(mae: float, base: float) -> float | None:
    return float(1.0 - mae / base) if base > 0 else None


def anomaly_scores(raw: np.ndarray, y: np.ndarray, sigma: list[float] | np.ndarray) -> np.ndarray:
    """Score per reading (L,): s_t = sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2)), NaN at t = 0.

    `raw` (L, n_targets) forecasts made at each reading for the next one, `y` (L, n_targets) the next
    readings themselves, so reading t is compared with the forecast made at t - 1.
    """
    s = np.full(len(raw), np.nan)
    if len(raw) > 1:
        z = (y[:-1] - raw[:-1]) / np.asarray(sigma)
        s[1:] = np.sqrt(np.mean(z**2, axis=1))
    return s


def anomaly_metrics(
    raw: list[np.ndarray],
    ys: list[np.ndarray],
    truth: list[np.ndarray] | None,
    warmup: int,
    sigma: list[float],
    threshold: float,
    base: list[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    scores, labels = [], []
    for i, (out, y) in enumerate(zip(raw, ys, strict=True)):
        s = anomaly_scores(out, y, sigma)
        s[:warmup] = np.nan
        scores.append(s)
        labels.append(truth[i] if truth is not None else np.zeros(len(s), np.int8))
    s, lab = np.concatenate(scores), np.concatenate(labels)
    ok = np.isfinite(s)
    s, lab = s[ok], lab[ok]
    flagged = s >= threshold
    normal = lab == 0
    forecast = forecast_metrics(raw, ys, warmup, 1, None, base)
    result: dict[str, Any] = {
        "readings": int(ok.sum()),
        "false_alarm_rate": float(flagged[normal].mean()) if normal.any() else None,
        "forecast_mae": forecast.get("mae"),
        **{k: forecast[k] for k in VERDICT_KEYS if k in forecast},
    }
    if truth is not None and (lab == 1).any() and normal.any():
        result["auc"] = auc(s, lab)
        result["detection_rate"] = float(flagged[lab == 1].mean())
        result["anomalies"] = int((lab == 1).sum())
    return result


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _gather(outs: list[np.ndarray], ys: list[np.ndarray], warmup: int) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for out, y in zip(outs, ys, strict=True):
        keep = (y >= 0) & np.isfinite(out).all(axis=1)
        keep[:warmup] = False
        rows.append(out[keep])
        labels.append(y[keep])
    return np.concatenate(rows), np.concatenate(labels)
