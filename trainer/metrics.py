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

from trainer.checkpoint import Checkpoint, Heldout, Scaler

INTERVAL_LEVEL = 0.9


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
    raw = [to_raw(o, ckpt.data.target_scaler, ckpt.config.horizon) for o in outs]
    if task == "forecast":
        half = (ckpt.head.get("interval") or {}).get("half_width")
        return forecast_metrics(raw, ys, warmup, ckpt.config.horizon, half)
    anomaly = ckpt.head["anomaly"]
    truth = None
    if heldout.anomaly is not None and heldout.anomaly.size:
        truth = [heldout.anomaly[i][: len(y)] for i, y in enumerate(ys)]
    return anomaly_metrics(raw, ys, truth, warmup, anomaly["sigma"], anomaly["threshold"])


def to_raw(out: np.ndarray, target_scaler: Scaler, horizon: int) -> np.ndarray:
    """Scaled forecast outputs (L, horizon * n_targets) -> raw units; output k * n_targets + j is target j."""
    n = len(out)
    per = out.reshape(n, horizon, -1) * np.asarray(target_scaler.scale) + np.asarray(target_scaler.offset)
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
    raw: list[np.ndarray], ys: list[np.ndarray], warmup: int, horizon: int, half_width: list[float] | None
) -> dict[str, Any]:
    """MAE in raw units against persistence (the last known target value repeated over the horizon)."""
    preds, trues, persist = [], [], []
    for out, y in zip(raw, ys, strict=True):
        nt = y.shape[1] // horizon
        # the target at t is the k = 0 block of the target row made at t - 1
        last = np.tile(y[:-1, :nt], (1, horizon))  # (L - 1, O)
        start = max(warmup, 1)
        preds.append(out[start:])
        trues.append(y[start:])
        persist.append(last[start - 1 :])
    pred, true, pers = np.concatenate(preds), np.concatenate(trues), np.concatenate(persist)
    ok = np.isfinite(true) & np.isfinite(pred).all(axis=1, keepdims=True) & np.isfinite(pers)
    if not ok.any():
        return {"readings": 0}
    err = np.abs(pred - true)
    mae = float(err[ok].mean())
    base = float(np.abs(pers - true)[ok].mean())
    result: dict[str, Any] = {
        "readings": int(ok.any(axis=1).sum()),
        "mae": mae,
        "mae_per_output": [float(err[ok[:, j], j].mean()) for j in range(err.shape[1])],
        "persistence_mae": base,
        "skill_vs_persistence": float(1.0 - mae / base) if base > 0 else None,
    }
    if half_width is not None:
        result["interval_coverage"] = float((err <= np.asarray(half_width))[ok].mean())
        result["interval_level"] = INTERVAL_LEVEL
    return result


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
    forecast = forecast_metrics(raw, ys, warmup, 1, None)
    result: dict[str, Any] = {
        "readings": int(ok.sum()),
        "false_alarm_rate": float(flagged[normal].mean()) if normal.any() else None,
        "forecast_mae": forecast.get("mae"),
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
