"""Task-head settings calibrated on the validation split, from outputs produced as the device produces them.

forecast: interval half-widths = the 0.9 quantile of |residual| per output (raw units).
anomaly:  sigma_j = std of validation residuals of target j (raw units); the score of reading t is
          s_t = sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2)) with xhat_t forecast at t - 1;
          threshold = quantile(1 - false_alarm_rate) of s over normal validation readings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgernn.errors import DataError
from trainer.metrics import INTERVAL_LEVEL, anomaly_scores
from trainer.prep import Part


def calibrate(
    task: str, val: Part, raw_outputs: list[np.ndarray], *, warmup: int, false_alarm_rate: float
) -> dict[str, Any]:
    """raw_outputs: per validation recording (L, O) forecasts in raw units; see the module docstring."""
    if task not in ("forecast", "anomaly"):
        return {}
    residuals = []
    for out, y in zip(raw_outputs, val.y_raw, strict=True):
        residuals.append((y - out)[warmup:])
    res = np.concatenate(residuals)  # (N, O) raw units, NaN where no target
    finite = np.isfinite(res)
    if not finite.any(axis=0).all():
        raise DataError("the validation split is too short to calibrate the head: some outputs never have a target")
    if task == "forecast":
        half = [float(np.quantile(np.abs(res[finite[:, j], j]), INTERVAL_LEVEL)) for j in range(res.shape[1])]
        return {"interval": {"level": INTERVAL_LEVEL, "half_width": half}}
    sigma = np.array([np.std(res[finite[:, j], j]) for j in range(res.shape[1])])
    sigma = np.where(sigma > 1e-12, sigma, 1.0)
    scores = []
    for s_rec, out, y in zip(val.series, raw_outputs, val.y_raw, strict=True):
        s = anomaly_scores(out, y, sigma)
        s[:warmup] = np.nan
        if s_rec.anomaly is not None:
            s[s_rec.anomaly == 1] = np.nan  # a false alarm rate is measured on normal readings
        scores.append(s)
    s = np.concatenate(scores)
    s = s[np.isfinite(s)]
    if not len(s):
        raise DataError("the validation split has no normal readings to calibrate the anomaly threshold on")
    return {
        "anomaly": {
            "threshold": float(np.quantile(s, 1.0 - false_alarm_rate)),
            "false_alarm_rate": float(false_alarm_rate),
            "score": "forecast-residual",
            "sigma": sigma.astype(float).tolist(),
            "calibration_readings": len(s),
        }
    }
