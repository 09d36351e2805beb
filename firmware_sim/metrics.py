"""Per-device accumulators the report is computed from, updated once per tick for a whole device group.

Everything is a fixed-size array indexed by device, so a run of any length keeps constant memory:
latency is a log-binned histogram (percentiles to within ~1.2%), classification a confusion matrix,
anomaly detection a small state machine per device, forecasts a ring of the last few per device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# log-spaced latency bins from 1 us to 100 s: 100 bins per decade, so a percentile read from a bin's
# geometric middle is within 10 ** (0.5 / 100) - 1 = 1.2% of the true value
_LO_US, _HI_US, _PER_DECADE = 1.0, 1e8, 100
_EDGES = np.logspace(np.log10(_LO_US), np.log10(_HI_US), int(np.log10(_HI_US / _LO_US) * _PER_DECADE) + 1)
_MIDS = np.sqrt(_EDGES[:-1] * _EDGES[1:])


class LatencyHistogram:
    """Counts of latencies (microseconds) per device: (D, bins)."""

    def __init__(self, devices: int) -> None:
        self.counts = np.zeros((devices, len(_MIDS)), np.int64)

    def add(self, dev: np.ndarray, latency_us: np.ndarray) -> None:
        """dev (n,) device indices, latency_us (n,)."""
        b = np.clip(np.searchsorted(_EDGES, latency_us, side="right") - 1, 0, len(_MIDS) - 1)
        np.add.at(self.counts, (dev, b), 1)

    def percentiles(self, dev: int | None = None, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
        counts = self.counts.sum(axis=0) if dev is None else self.counts[dev]
        return percentiles_of(counts, qs)

    def max_us(self, dev: int | None = None) -> float | None:
        return max_of(self.counts.sum(axis=0) if dev is None else self.counts[dev])


def percentiles_of(counts: np.ndarray, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    total = int(counts.sum())
    if total == 0:
        return {f"p{q:g}": None for q in qs}
    cum = np.cumsum(counts)
    return {f"p{q:g}": float(_MIDS[int(np.searchsorted(cum, q / 100 * total))]) for q in qs}


def max_of(counts: np.ndarray) -> float | None:
    """Upper edge of the highest occupied bin (microseconds), or None."""
    nz = np.flatnonzero(counts)
    return float(_EDGES[nz[-1] + 1]) if len(nz) else None


def histogram_bins() -> np.ndarray:
    """Bin edges in microseconds (bins + 1,), for plotting."""
    return _EDGES


def classification_scores(conf: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision / recall / F1 from a confusion matrix (truth, predicted)."""
    total = int(conf.sum())
    if total == 0:
        return {"readings": 0, "accuracy": None, "macro_f1": None, "per_class": {}}
    tp = np.diag(conf).astype(float)
    pred_n, true_n = conf.sum(axis=0), conf.sum(axis=1)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    present = true_n > 0  # macro over the classes that occurred
    return {
        "readings": total,
        "accuracy": float(tp.sum() / total),
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "n": int(true_n[i]),
            }
            for i, name in enumerate(labels)
        },
    }


def describe_alarm(anomaly: dict[str, Any]) -> str:
    """How the bundle's devices raise `is_anomaly` from their scores (manifest `output.anomaly`; the rule
    itself runs in the device's anomaly head, `edge_runtime.stream.heads.anomaly`)."""
    rule = anomaly.get("alarm") or {}
    if rule.get("rule") != "ewma":
        return f"alarm: score >= {float(anomaly.get('threshold', np.inf)):.4g} (one reading)"
    at = float(rule["threshold"])
    return (
        f"alarm: score smoothed over {round(float(rule.get('readings', 1)))} readings >= {at:.4g}, "
        f"cleared below {float(rule.get('clear', at)):.4g}"
    )


class AnomalyTracker:
    """Detection of ground-truth anomaly episodes by the model's alarms, per device.

    An episode runs from truth turning 1 until it turns 0. It is detected by the first alarm inside it; the
    detection delay is that alarm's time minus the episode's start. An alarm that starts (rising edge) while
    truth is 0 is a false alarm, unless the device's sensor had just read wrong values (an injected stuck
    sensor, NaN burst or spike: `excused`), where an anomaly model is right to alarm; those are counted apart
    (`alarms_on_sensor_faults`). Per reading, the alarm is also scored as a binary classifier (TP/FP/TN/FN).
    """

    def __init__(self, devices: int) -> None:
        self.prev_truth = np.zeros(devices, bool)
        self.prev_alarm = np.zeros(devices, bool)
        self.start = np.full(devices, np.nan)  # start of the open episode
        self.detected = np.zeros(devices, bool)
        self.episodes = np.zeros(devices, np.int64)
        self.missed = np.zeros(devices, np.int64)
        self.false_alarms = np.zeros(devices, np.int64)
        self.fault_alarms = np.zeros(devices, np.int64)  # alarms raised on an injected sensor fault
        self.confusion = np.zeros((devices, 4), np.int64)  # tp, fp, tn, fn
        self.delays: list[list[float]] = [[] for _ in range(devices)]
        self.first_onset = np.full(devices, np.nan)

    def add(
        self, dev: np.ndarray, t: float, truth: np.ndarray, alarm: np.ndarray, excused: np.ndarray | None = None
    ) -> None:
        """dev (n,) device indices; truth, alarm (n,) bool for the readings of this tick at time t; excused (n,)
        bool: the device's sensor read wrong values just now (an alarm there is not false)."""
        was = self.prev_truth[dev]
        rising = truth & ~was
        if rising.any():
            d = dev[rising]
            self.start[d] = t
            self.detected[d] = False
            self.episodes[d] += 1
            self.first_onset[d] = np.where(np.isnan(self.first_onset[d]), t, self.first_onset[d])
        ended = was & ~truth
        if ended.any():
            d = dev[ended]
            self.missed[d] += ~self.detected[d]
            self.start[d] = np.nan
        hit = truth & alarm & ~self.detected[dev]
        for d in dev[hit]:
            self.delays[d].append(t - float(self.start[d]))
        self.detected[dev[hit]] = True
        raised = alarm & ~truth & ~self.prev_alarm[dev]
        if excused is not None:
            self.fault_alarms[dev[raised & excused]] += 1
            raised &= ~excused
        self.false_alarms[dev[raised]] += 1
        self.prev_truth[dev] = truth
        self.prev_alarm[dev] = alarm
        idx = np.where(truth, np.where(alarm, 0, 3), np.where(alarm, 1, 2))
        np.add.at(self.confusion, (dev, idx), 1)

    def summary(self, devs: np.ndarray | None = None, hours: float = 1.0) -> dict[str, Any]:
        sel = slice(None) if devs is None else devs
        delays = [x for d in (range(len(self.delays)) if devs is None else devs) for x in self.delays[d]]
        open_undetected = int((~np.isnan(self.start[sel]) & ~self.detected[sel]).sum())
        tp, fp, tn, fn = (int(v) for v in self.confusion[sel].sum(axis=0))
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if tp + fp + fn else None)
        return {
            "episodes": int(self.episodes[sel].sum()),
            "detected": len(delays),
            "missed": int(self.missed[sel].sum()) + open_undetected,
            "detection_delay_s": _stats(delays),
            "false_alarms": int(self.false_alarms[sel].sum()),
            "false_alarms_per_device_hour": (fa_h := float(self.false_alarms[sel].sum())
            / max(1e-9, hours * (len(self.start) if devs is None else len(devs)))),
            "false_alarms_per_device_day": 24.0 * fa_h,
            "alarms_on_sensor_faults": int(self.fault_alarms[sel].sum()),
            "readings": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }


class ForecastTracker:
    """Forecasts against what the signal then did, per device, as `edgernn inspect` scores them.

    A forecast made at reading k holds target j at readings k + 1 .. k + horizon (output s * T + j). When the
    device's reading k + 1 + s arrives, output block s is scored against that reading's true targets (the
    signal's, before any fault), next to persistence (the targets at reading k, repeated). Every published
    forecast counts, warming up or not (as for classification); a step whose reading made no prediction on
    this device (dropped, not sampled) is not scored.
    Constant memory: a ring of the last `horizon` forecasts per device.
    """

    def __init__(self, devices: int, horizon: int, n_targets: int) -> None:
        h, nt = max(horizon, 1), max(n_targets, 1)
        self.h, self.nt = h, nt
        self.fc = np.full((devices, h, h * nt), np.nan)  # (D, slot, O) forecasts, slot = reading % h
        self.base = np.full((devices, h, nt), np.nan)  # (D, slot, T) targets at the forecast's reading
        self.made = np.full((devices, h), -1, np.int64)  # (D, slot) reading index the slot's forecast was made at
        self.err = np.zeros((devices, h * nt))  # (D, O) sums of |forecast - truth|
        self.base_err = np.zeros((devices, h * nt))  # (D, O) the same for persistence
        self.count = np.zeros((devices, h * nt), np.int64)  # (D, O) values scored

    def add(self, dev: np.ndarray, k: int, target: np.ndarray, values: np.ndarray) -> None:
        """Devices `dev` (n,) (each once) made a prediction at reading k: `target` (n, T) their true targets
        there, `values` (n, O) their raw forecasts (a NaN row: not to be scored)."""
        nt = self.nt
        for s in range(self.h):  # score the forecasts made s + 1 readings ago
            src = k - 1 - s
            if src < 0:
                break
            slot = src % self.h
            due = self.made[dev, slot] == src
            if not due.any():
                continue
            d = dev[due]
            pred = self.fc[d, slot, s * nt : (s + 1) * nt]  # (m, T)
            true, base = target[due], self.base[d, slot]
            ok = np.isfinite(pred) & np.isfinite(true) & np.isfinite(base)
            cols = slice(s * nt, (s + 1) * nt)
            self.err[d, cols] += np.where(ok, np.abs(pred - true), 0.0)
            self.base_err[d, cols] += np.where(ok, np.abs(base - true), 0.0)
            self.count[d, cols] += ok
        slot = k % self.h
        self.fc[dev, slot] = values
        self.base[dev, slot] = target
        self.made[dev, slot] = np.where(np.isfinite(values).all(axis=1), k, -1)

    def summary(self, devs: np.ndarray | None = None) -> dict[str, Any]:
        sel = slice(None) if devs is None else devs
        err, base, n = self.err[sel].sum(axis=0), self.base_err[sel].sum(axis=0), self.count[sel].sum(axis=0)
        total = int(n.sum())
        if total == 0:
            return {"readings": 0, "mae": None, "persistence_mae": None, "skill_vs_persistence": None}
        mae, pers = float(err.sum() / total), float(base.sum() / total)
        per = np.divide(err, n, out=np.full(len(n), np.nan), where=n > 0)
        return {
            "readings": int(n[0]),  # forecasts scored (their first output)
            "values": total,  # (forecast, output) pairs scored
            "mae": mae,
            "mae_per_output": [None if not np.isfinite(v) else float(v) for v in per],
            "persistence_mae": pers,
            "skill_vs_persistence": float(1.0 - mae / pers) if pers > 0 else None,
        }


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values)
    return {"mean": float(a.mean()), "p50": float(np.median(a)), "max": float(a.max())}
