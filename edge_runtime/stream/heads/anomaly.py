"""anomaly: the model forecasts the next reading of its targets (a forecast head, horizon 1); each reading
is scored against the forecast made one reading before it:
`score = sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2))`, xhat_t the raw forecast made at t-1;
`is_anomaly` = score >= `output.anomaly.threshold`. No score after a reset (no forecast yet) or when a
target's value was not measured (held or imputed). The forecasts live in the table's `prev_fc`.

With an alarm rule in the manifest (`output.anomaly.alarm`, calibrated by `train --false-alarms-per-day`),
`is_anomaly` is the rule's state instead: per stream, e = e + (score - e) / readings (from `start`; a reading
without a score leaves e as it was), raised at e >= `threshold` and held until e < `clear`. e and the raised
flag are per-stream state in the table (`alarm_e`, `alarm_on`): checkpointed, restored, cleared by a reset,
and computed in float64 with the same arithmetic on every stepping path, so every backend raises the same
alarms and `edgernn simulate` counts exactly what the device published.
"""

from __future__ import annotations

import math

import numpy as np

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.heads.base import Fields, Index, Subst, Vals
from edge_runtime.stream.heads.forecast import ForecastHead
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import StreamTable
from edgernn.errors import BundleError


class AnomalyHead(ForecastHead):
    task = "anomaly"
    quality_columns = (("auc", "AUC"), ("false_alarm_rate", "false alarms"), ("forecast_mae", "fcst MAE"))

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        out = manifest.output
        if len(self.targets) != len(out.targets):
            raise BundleError(f"anomaly targets {out.targets} must be input features {list(manifest.input.features)}")
        anomaly = out.anomaly or {}
        self.threshold = float(anomaly["threshold"]) if "threshold" in anomaly else math.inf
        sigma = anomaly.get("sigma") or [1.0] * self.n_targets
        self.inv_sigma = [1.0 / max(float(s), 1e-12) for s in sigma]
        self.inv_sigma_arr = np.asarray(self.inv_sigma, np.float64)
        rule = anomaly.get("alarm") or {}
        self.rule = rule.get("rule") == "ewma"
        if rule and not self.rule:
            raise BundleError(f"unsupported anomaly alarm rule {rule.get('rule')!r}; supported: ewma")
        self.alpha = 1.0 / max(float(rule.get("readings", 1)), 1.0)
        self.alarm_at = float(rule.get("threshold", math.inf))
        self.alarm_clear = min(float(rule.get("clear", self.alarm_at)), self.alarm_at)
        self.alarm_start = float(rule.get("start", 0.0))

    def one(self, pred: Prediction, y: np.ndarray, tab: StreamTable, s: int, vals: Vals, subst: Subst) -> None:
        tab.last_y[s] = y[0]
        pred.values = self.raw(y[0].tolist(), vals)
        score = self._remember(tab, s, pred.values, vals, subst)
        if score is not None:
            pred.anomaly = score
            pred.is_anomaly = self._alarm_one(tab, s, score) if self.rule else score >= self.threshold

    def _alarm_one(self, tab: StreamTable, s: int, score: float) -> bool:
        """The alarm rule's state of slot `s` after this reading's score (plain Python, float64)."""
        e = float(tab.alarm_e[s])
        if e != e:  # NaN: the first score since a reset
            e = self.alarm_start
        e += self.alpha * (score - e)
        on = e >= self.alarm_at or (bool(tab.alarm_on[s]) and e >= self.alarm_clear)
        tab.alarm_e[s], tab.alarm_on[s] = e, on
        return on

    def _alarm_rows(self, tab: StreamTable, sel: Index, score: np.ndarray) -> np.ndarray:
        """`_alarm_one` for M distinct slots `sel` (M,) with scores (M,) (NaN: none) -> (M,) alarm state."""
        e = tab.alarm_e[sel]  # (M,) a copy for an index array, a view for a slice: written back below
        on = tab.alarm_on[sel]
        ok = np.isfinite(score)
        e = np.where(np.isnan(e) & ok, self.alarm_start, e)
        e[ok] += self.alpha * (score[ok] - e[ok])
        on = np.where(ok, (e >= self.alarm_at) | (on & (e >= self.alarm_clear)), on)
        tab.alarm_e[sel], tab.alarm_on[sel] = e, on
        return on

    def held_one(self, y: np.ndarray, tab: StreamTable, s: int, vals: list[float] | None) -> None:
        self._remember(tab, s, self.raw(y[0].tolist(), vals), None, None)

    def _remember(
        self, tab: StreamTable, s: int, forecast: list[float], vals: list[float] | None, subst: frozenset[int] | None
    ) -> float | None:
        """Score of this reading against the last forecast; remembers this reading's forecast."""
        prev = tab.prev_fc[s].tolist()
        tab.prev_fc[s] = forecast[: len(self.targets)]
        if vals is None or prev[0] != prev[0] or (subst and any(i in subst for i in self.targets)):
            return None  # first reading after a reset, or a target value that was not measured
        return self.score([vals[i] for i in self.targets], prev)

    def many(
        self, y: np.ndarray, tab: StreamTable, sel: Index, actual: np.ndarray, subst: dict[int, frozenset[int]]
    ) -> tuple[np.ndarray, Fields]:
        tab.last_y[sel] = y
        values = self.raw_batch(y, actual)
        prev = tab.prev_fc[sel]
        score = self.score_batch(actual[:, self.targets], prev)  # NaN where no forecast yet
        for r, sub in subst.items():
            if any(i in sub for i in self.targets):
                score[r] = np.nan
        tab.prev_fc[sel] = values[:, : len(self.targets)]
        alarm = self._alarm_rows(tab, sel, score) if self.rule else None
        return values, {"anomaly": score, "threshold": self.threshold, "alarm": alarm}

    def held_many(self, y: np.ndarray, tab: StreamTable, sel: Index, actual: np.ndarray) -> None:
        tab.prev_fc[sel] = self.raw_batch(y, actual)[:, : len(self.targets)]

    def block(self, y: np.ndarray, tab: StreamTable, sel: Index, x_raw: np.ndarray) -> tuple[np.ndarray, Fields]:
        values, _ = super().block(y, tab, sel, x_raw)  # (K * N, O)
        # each reading is scored against the forecast made one tick before it
        n_tg = len(self.targets)
        fc = values.reshape(y.shape[0], y.shape[1], -1)[:, :, :n_tg]  # (K, N, T)
        prev = np.concatenate([tab.prev_fc[sel][None], fc[:-1]])  # (K, N, T)
        actual = x_raw[:, :, self.targets].reshape(-1, n_tg)
        score = self.score_batch(actual, prev.reshape(-1, n_tg))  # (K * N,) tick-major
        tab.prev_fc[sel] = fc[-1]
        alarm = None
        if self.rule:  # a recurrence: tick by tick, each tick's N streams at once
            n = y.shape[1]
            alarm = np.concatenate([self._alarm_rows(tab, sel, score[k * n : (k + 1) * n]) for k in range(y.shape[0])])
        return values, {"anomaly": score, "threshold": self.threshold, "alarm": alarm}

    def score(self, actual: list[float], forecast: list[float]) -> float:
        """Anomaly score of this reading's targets (raw) against the forecast made one reading ago."""
        acc = 0.0
        for a, f, w in zip(actual, forecast, self.inv_sigma, strict=True):
            acc += ((a - f) * w) ** 2
        return math.sqrt(acc / len(actual))

    def score_batch(self, actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
        """(N, n_targets) raw actual and forecast -> (N,) scores; NaN where there was no forecast."""
        d = (actual - forecast) * self.inv_sigma_arr
        return np.sqrt(np.mean(d * d, axis=1))
