"""A fleet's readings through its Predictor, every reading that made no prediction booked to its device.

Clean readings go through the batch calls (`step_many`, `step_block`): one backend call for the fleet. The
readings the runtime questions (`Predictor.questioned`) or a fault touched go through `step_one`, one at a
time, so the runtime's own counters say which device's reading was dropped or flagged and why; whatever a
batch call counted anyway is booked as unattributed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge_runtime.stream.batch import PredictionBatch
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.predictor import Predictor
from firmware_sim.books import FleetBooks
from firmware_sim.power import FleetPower

# (devices that made a prediction (M,), the batch, their entries in it (M,), label index (M,), anomaly score (M,))
Made = tuple[np.ndarray, PredictionBatch | None, np.ndarray, np.ndarray, np.ndarray]


class FleetSteps:
    def __init__(
        self, predictor: Predictor, ids: list[str], labels: list[str], books: FleetBooks, power: FleetPower
    ) -> None:
        self.p = predictor
        self.ids = ids
        self.books = books
        self.power = power
        self._label_index = {name: i for i, name in enumerate(labels)}  # Prediction.label -> index
        window = predictor.manifest.mode == "window"
        self._pooled = pooled = predictor.manifest.pool > 1
        # why a batch entry made no prediction
        self._held = "window_hop" if window else "pooling" if pooled else "warmup"
        self._held_one = "pooling" if pooled else "warmup"  # step_one's

    def many(self, dev: np.ndarray, x: np.ndarray, ids: list[str], ts: np.ndarray) -> Made:
        """One reading (N, F) at ts (N,) for each device in `dev` (N,), named `ids`."""
        if not len(dev):
            return dev, None, dev, np.zeros(0, np.int64), np.zeros(0)
        batch = self._counted(lambda: self.p.step_many(x, ids, t=ts))
        idx, lab, score = self._made(batch, dev)
        return dev[idx], batch, idx, lab, score

    def block(self, x: np.ndarray, times: np.ndarray) -> Made:
        """Every device's readings (K, D, F) at times (K, D) in one `step_block`; entries tick-major."""
        batch = self._counted(lambda: self.p.step_block(x, self.ids, times))
        n = len(self.ids)
        entries, lab, score = self._made(batch, np.tile(np.arange(n), x.shape[0]))  # entry i * D + d
        return entries % n, batch, entries, lab, score

    def each(
        self, dev: np.ndarray, x: np.ndarray, ts: np.ndarray
    ) -> tuple[np.ndarray, list[Prediction], np.ndarray, np.ndarray]:
        """Readings (M, F) of devices `dev` (M,) one at a time -> (devices that made one, their predictions,
        label index, anomaly score); each reading's bad-reading reasons booked as dropped or flagged."""
        p, books = self.p, self.books
        out_dev, preds, lab, score = [], [], [], []
        for d, row, t in zip(dev.tolist(), x, ts.tolist(), strict=True):
            bad0 = dict(p.bad)
            kept0 = (p.counts.skipped, p.counts.held_back)
            pred = p.step_one(row, t=t, stream=self.ids[d])
            reasons = [r for r, n in p.bad.items() if n != bad0.get(r, 0)]
            one = np.array([d])
            self.power.first_reading(d, reasons)
            if pred is None:
                if self._pooled and (p.counts.skipped, p.counts.held_back) == kept0:
                    # a reading (repaired or not) that went into its stream's pool: booked as pooling, its
                    # repairs as flags, as the same reading in a batch call would be
                    books.count(books.dropped, "pooling", one)
                    for reason in reasons:
                        books.count(books.flagged, reason, one)
                    continue
                books.count(books.dropped, reasons[0] if reasons else self._held_one, one)
                continue
            for reason in reasons:
                books.count(books.flagged, reason, one)
            out_dev.append(d)
            preds.append(pred)
            lab.append(self._label_index.get(pred.label, -1) if pred.label is not None else -1)
            score.append(np.nan if pred.anomaly is None else pred.anomaly)
        return np.asarray(out_dev, np.int64), preds, np.asarray(lab, np.int64), np.asarray(score, float)

    def _counted(self, call: Callable[[], PredictionBatch]) -> PredictionBatch:
        """A batch call, booking the bad readings the runtime counted inside it as unattributed."""
        bad0 = dict(self.p.bad)
        batch = call()
        self.books.unattributed_since(bad0, self.p.bad)
        return batch

    def _made(self, batch: PredictionBatch, dev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries of `batch` that made a prediction (the others booked against their device `dev` (E,)),
        with their label index and anomaly score."""
        rows = batch.rows
        made = rows >= 0
        if not made.all():
            self.books.count(self.books.dropped, self._held, dev[~made])
        idx = np.flatnonzero(made)
        r = rows[idx]
        lab = batch.label_index[r] if batch.label_index is not None else np.full(len(idx), -1)
        score = batch.anomaly[r] if batch.anomaly is not None else np.full(len(idx), np.nan)
        return idx, np.asarray(lab, np.int64), np.asarray(score, float)
