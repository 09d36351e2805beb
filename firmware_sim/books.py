"""A fleet's books: per device, what happened to every reading it produced, and how right the model was.

    readings produced = predictions + dropped (by reason); flagged: predicted despite a problem
    latency (modelled on the profile) -> histogram, deadline misses; truth vs prediction -> confusion,
    anomaly episodes or forecast errors; the fleet's first device's predictions vs truth -> the trace plot

Plain counters the stepping adds to; `fields()` copies them out for `results.FleetResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edge_runtime.bundle.manifest import OutputSpec
from firmware_sim.metrics import AnomalyTracker, ForecastTracker, LatencyHistogram, describe_alarm
from firmware_sim.tasks import sim_task_for

if TYPE_CHECKING:
    from edge_runtime.stream.batch import PredictionBatch
    from edge_runtime.stream.prediction import Prediction

TRACE_MAX = 50_000  # readings of the sample device kept for the predictions-vs-truth plot


class FleetBooks:
    def __init__(
        self, n: int, output: OutputSpec, truth_kind: str, signal_labels: list[str], *, targets: bool = False
    ) -> None:
        """`output`: the bundle's; `truth_kind`, `signal_labels`: the signal's ground truth (label | anomaly | ...)
        and its label names by truth index; `targets`: the signal gives a forecast bundle's true targets."""
        self.n = n
        self.sim = sim = sim_task_for(output.task)  # what is truth and how it is scored
        labels = list(output.labels)
        # ground truth: the signal's labels mapped onto the bundle's (-1: none of them), or anomaly flags
        self.truth_map: np.ndarray | None = sim.truth_map(labels, truth_kind, signal_labels)
        anomaly = output.anomaly or {}
        self.threshold: float | None = float(anomaly["threshold"]) if "threshold" in anomaly else None
        self.alarm_rule = describe_alarm(anomaly) if sim.alarms else ""
        # how long an alarm may trail a sensor fault and still be the fault's: the rule's memory (3 x its
        # smoothing, in readings) and a minute for the model's state to recover from the wrong readings
        self.fault_memory_readings = 3.0 * float((anomaly.get("alarm") or {}).get("readings", 1))
        self.forecasts = ForecastTracker(n, output.horizon, len(output.targets)) if sim.forecasts and targets else None
        self.scored = sim.scored(truth_kind, self.truth_map, self.forecasts is not None)
        self.produced = np.zeros(n, np.int64)
        self.predictions = np.zeros(n, np.int64)
        self.not_sampled = np.zeros(n, np.int64)
        self.deadline_misses = np.zeros(n, np.int64)
        self.dropped: dict[str, np.ndarray] = {}  # reason -> (D,) readings that made no prediction
        self.flagged: dict[str, np.ndarray] = {}  # reason -> (D,) readings predicted despite the problem
        self.unattributed: dict[str, int] = {}  # bad readings the runtime counted in a step_many call
        self.lat_hist = LatencyHistogram(n)
        self.confusion = np.zeros((n, max(1, len(labels)), max(1, len(labels))), np.int64)
        self.anomaly = AnomalyTracker(n)
        self.trace: dict[str, list[float]] = {"t": [], "truth": [], "pred": [], "score": []}

    def count(self, book: dict[str, np.ndarray], reason: str, dev: np.ndarray) -> None:
        """One reading of each device in `dev` (M,) into `book` (dropped or flagged) under `reason`."""
        if reason not in book:
            book[reason] = np.zeros(self.n, np.int64)
        np.add.at(book[reason], dev, 1)

    def unattributed_since(self, before: dict[str, int], now: dict[str, int]) -> None:
        """Bad readings the runtime counted inside a batch call, from its counters before and after (the
        fleet routes the ones it foresees to step_one, so these are what it did not foresee)."""
        if now != before:
            for reason, n in now.items():
                if n != before.get(reason, 0):
                    self.unattributed[reason] = self.unattributed.get(reason, 0) + n - before.get(reason, 0)

    def latencies(self, devs: np.ndarray, lat: np.ndarray, deadline_us: float, one_tick: bool) -> None:
        """Predictions of `devs` (M,) with modelled latencies `lat` (M,) µs; one tick: each device once."""
        self.lat_hist.add(devs, lat)
        late = lat > deadline_us
        if one_tick:
            self.predictions[devs] += 1
            self.deadline_misses[devs] += late
        else:
            self.predictions += np.bincount(devs, minlength=self.n)
            self.deadline_misses += np.bincount(devs[late], minlength=self.n)

    def score(
        self,
        devs: np.ndarray,
        t: float | np.ndarray,
        truth: np.ndarray,
        lab: np.ndarray,
        alarm: np.ndarray,
        excused: np.ndarray | None = None,
    ) -> None:
        """Truth (M,) against label index `lab` (M,) or the device's published `is_anomaly` (M,) bool;
        t: the tick's time, or each entry's (M,) for a block (entries tick-major); excused (M,) bool: the
        device's sensor has just read wrong values (an injected fault), so an alarm is not false."""
        if self.scored:
            self.sim.score(self, devs, t, truth, lab, alarm, excused)

    def alarms(self, n: int, batch: PredictionBatch | None, made: np.ndarray, singles: list[Prediction]) -> np.ndarray:
        """(n,) the `is_anomaly` the devices published: the batch's entries `made` first, then `singles`."""
        out = np.zeros(n, bool)
        if not self.sim.alarms:
            return out
        if batch is not None and len(made) and batch.anomaly is not None:
            out[: len(made)] = batch.is_anomaly(batch.rows[made])
        for i, pred in enumerate(singles, start=n - len(singles)):
            out[i] = bool(pred.is_anomaly)
        return out

    def score_forecasts(
        self,
        devs: np.ndarray,
        k: int | np.ndarray,
        target: np.ndarray,
        batch: PredictionBatch | None,
        made: np.ndarray,
        singles: list[Prediction],
    ) -> None:
        """Forecasts of `devs` (M,) made at reading index `k` (scalar, or per entry (M,) for a block, entries
        tick-major), with their true targets there (M, T): the batch's entries `made` first, then `singles`."""
        if self.forecasts is None:
            return
        o = self.forecasts.h * self.forecasts.nt
        values = np.full((len(devs), o), np.nan)  # (M, O) every published forecast, warming up or not
        if batch is not None and len(made):
            values[: len(made)] = batch.values[batch.rows[made]]
        for i, pred in enumerate(singles, start=len(devs) - len(singles)):
            values[i] = pred.values
        if np.ndim(k) == 0:
            self.forecasts.add(devs, int(k), target, values)
            return
        ks = np.asarray(k)
        cuts = np.flatnonzero(np.diff(ks)) + 1  # reading by reading: a forecast is scored after it is made
        for part in np.split(np.arange(len(ks)), cuts):
            self.forecasts.add(devs[part], int(ks[part[0]]), target[part], values[part])

    def sample_device(
        self, devs: np.ndarray, t: float | np.ndarray, truth: np.ndarray, lab: np.ndarray, score: np.ndarray
    ) -> None:
        """Keep device 0's entries among `devs` (M,) for the trace plot (t: scalar, or per entry (M,))."""
        if len(self.trace["t"]) >= TRACE_MAX:
            return
        tr = self.trace
        for k0 in np.flatnonzero(devs == 0).tolist():
            tr["t"].append(float(t) if np.ndim(t) == 0 else float(t[k0]))  # type: ignore[index]
            tr["truth"].append(float(self.truth_map[truth[k0]]) if self.truth_map is not None else float(truth[k0]))
            tr["pred"].append(float(lab[k0]))
            tr["score"].append(float(score[k0]))

    def fields(self, first_of_fleet: bool) -> dict[str, Any]:
        """Copies for `FleetResult` (the trace only from the shard holding the fleet's first device)."""
        return {
            "produced": self.produced.copy(),
            "predictions": self.predictions.copy(),
            "not_sampled": self.not_sampled.copy(),
            "deadline_misses": self.deadline_misses.copy(),
            "latency_counts": self.lat_hist.counts.copy(),
            "confusion": self.confusion.copy(),
            "anomaly": self.anomaly,
            "forecasts": self.forecasts,
            "alarm_rule": self.alarm_rule,
            "dropped": {k: v.copy() for k, v in self.dropped.items()},
            "flagged": {k: v.copy() for k, v in self.flagged.items()},
            "unattributed": dict(self.unattributed),
            "trace": {k: list(v) for k, v in self.trace.items()} if first_of_fleet else {},
        }
