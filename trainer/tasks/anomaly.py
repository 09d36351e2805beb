"""anomaly: a forecast of the next reading's targets (horizon 1), and a score of how far each reading is from it.

Per-reading target: (L, n_targets) the next reading's targets; a reading labelled anomalous is never a
training target (never learn to forecast a known anomaly).
Head, calibrated on the validation split:
    sigma_j = std of validation residuals of target j (raw units) over normal readings (a fault in the
    validation split must not set the scale of normal); the score of reading t is
    s_t = sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2)) with xhat_t forecast at t - 1;
    threshold = quantile(1 - false_alarm_rate) of s over normal validation readings (the device's per-reading
    flag); with `false_alarms_per_day`, also the alarm rule of `trainer.alarm` for that many false alarms
    per device-day.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.errors import DataError
from trainer.alarm import calibrate_alarm
from trainer.checkpoint import Checkpoint, Heldout
from trainer.table import Series
from trainer.tasks.base import Prep, Split
from trainer.tasks.forecast import VERDICT_KEYS, ForecastTask, forecast_metrics, residuals


class AnomalyTask(ForecastTask):
    name = "anomaly"
    multi_step = False
    targets_in_inputs = True

    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        return "forecast-residual score"

    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        raw, scaled = super().targets(s, prep)
        if s.anomaly is not None:
            scaled[:-1][s.anomaly[1:] == 1] = np.nan  # never learn to forecast a known anomaly
        return raw, scaled

    def scores(
        self, ckpt: Checkpoint, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Heldout
    ) -> dict[str, Any]:
        raw, base = self.raw_and_baselines(ckpt, outs, ys, heldout)
        anomaly = ckpt.head["anomaly"]
        truth = None
        if heldout.anomaly is not None and heldout.anomaly.size:
            truth = [heldout.anomaly[i][: len(y)] for i, y in enumerate(ys)]
        warmup = int(ckpt.training.get("warmup", 0))
        return anomaly_metrics(raw, ys, truth, warmup, anomaly["sigma"], anomaly["threshold"], base)

    def headline(self, metrics: dict[str, Any]) -> tuple[str, float | None]:
        return "forecast_mae", metrics.get("forecast_mae")

    def calibrate(
        self,
        val: Split,
        raw_outputs: list[np.ndarray],
        *,
        warmup: int,
        false_alarm_rate: float,
        false_alarms_per_day: float | None = None,
        rate: float | None = None,
    ) -> dict[str, Any]:
        res, finite = residuals(val, raw_outputs, warmup, normal_only=True)
        sigma = np.array([np.std(res[finite[:, j], j]) for j in range(res.shape[1])])
        sigma = np.where(sigma > 1e-12, sigma, 1.0)
        streams, scores = [], []  # every reading's score (the alarm rule is judged on them); normal ones only
        for s_rec, out, y in zip(val.series, raw_outputs, val.y_raw, strict=True):
            full = anomaly_scores(out, y, sigma)
            full[:warmup] = np.nan
            streams.append(full)
            s = full.copy()
            if s_rec.anomaly is not None:
                s[s_rec.anomaly == 1] = np.nan  # a false alarm rate is measured on normal readings
            scores.append(s)
        s = np.concatenate(scores)
        s = s[np.isfinite(s)]
        if not len(s):
            raise DataError("the validation split has no normal readings to calibrate the anomaly threshold on")
        anomaly: dict[str, Any] = {
            "threshold": float(np.quantile(s, 1.0 - false_alarm_rate)),
            "false_alarm_rate": float(false_alarm_rate),
            "score": "forecast-residual",
            "sigma": sigma.astype(float).tolist(),
            "calibration_readings": len(s),
        }
        if false_alarms_per_day is not None:
            truth = [s_rec.anomaly for s_rec in val.series]
            anomaly["alarm"] = calibrate_alarm(streams, truth, rate, false_alarms_per_day)
        return {"anomaly": anomaly}

    def check_head(self, ckpt: Checkpoint) -> str:
        why = super().check_head(ckpt)
        if why:
            return why
        anomaly: dict[str, Any] = ckpt.head.get("anomaly") or {}
        missing = [k for k in ("threshold", "sigma") if k not in anomaly]
        if missing:
            return f"an anomaly checkpoint needs head.anomaly {missing}; it has {sorted(anomaly)}"
        return ""


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
