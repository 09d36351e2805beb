"""Task-head settings calibrated on the validation split, from outputs produced as the device produces them.

forecast: interval half-widths = the 0.9 quantile of |residual| per output (raw units).
anomaly:  sigma_j = std of validation residuals of target j (raw units) over normal readings (a fault in
          the validation split must not set the scale of normal); the score of reading t is
          s_t = sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2)) with xhat_t forecast at t - 1;
          threshold = quantile(1 - false_alarm_rate) of s over normal validation readings (the device's
          per-reading flag); with `false_alarms_per_day`, also the alarm rule of `trainer.alarm` for that many
          false alarms per device-day.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgernn.errors import DataError
from trainer.alarm import calibrate_alarm
from trainer.metrics import INTERVAL_LEVEL, anomaly_scores
from trainer.prep import Part


def calibrate(
    task: str,
    val: Part,
    raw_outputs: list[np.ndarray],
    *,
    warmup: int,
    false_alarm_rate: float,
    false_alarms_per_day: float | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """raw_outputs: per validation recording (L, O) forecasts in raw units; `rate` readings per second (the
    alarm's time scale); see the module docstring."""
    if task not in ("forecast", "anomaly"):
        return {}
    residuals = []
    for s_rec, out, y in zip(val.series, raw_outputs, val.y_raw, strict=True):
        r = (y - out)[warmup:]  # (L - warmup, O): y[t] is reading t + 1, judged by the forecast made at t
        if task == "anomaly" and s_rec.anomaly is not None:
            r = r[np.append(s_rec.anomaly[1:], 0)[warmup:] == 0]  # reading t + 1 normal
        residuals.append(r)
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
    anomaly: dict[str, Any] = {
        "threshold": float(np.quantile(s, 1.0 - false_alarm_rate)),
        "false_alarm_rate": float(false_alarm_rate),
        "score": "forecast-residual",
        "sigma": sigma.astype(float).tolist(),
        "calibration_readings": len(s),
    }
    if false_alarms_per_day is not None:
        streams = []  # every reading's score this time, anomalies included: the alarm rule is judged on them
        for out, y in zip(raw_outputs, val.y_raw, strict=True):
            full = anomaly_scores(out, y, sigma)
            full[:warmup] = np.nan
            streams.append(full)
        truth = [s_rec.anomaly for s_rec in val.series]
        anomaly["alarm"] = calibrate_alarm(streams, truth, rate, false_alarms_per_day)
    return {"anomaly": anomaly}
