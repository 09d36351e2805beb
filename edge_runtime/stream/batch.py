"""`PredictionBatch`: what `step_many` returns, a list-like of `Prediction | None` backed by arrays.

A gateway stepping thousands of streams per tick should not pay for thousands of Python objects it may
only serialise: the batch keeps the outputs as arrays (`values (M, O)`, `probability (M,)`, ...) and builds
each `Prediction` when it is indexed or iterated. Entry i belongs to `stream_ids[i]`; it is None when that
reading produced no prediction (skipped by a policy, held back while warming up, between window hops).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from edge_runtime.stream.prediction import Prediction


class PredictionBatch(Sequence[Prediction | None]):
    def __init__(
        self,
        stream_ids: Sequence[str],
        rows: np.ndarray,  # (N,) row into the arrays below, -1: no prediction
        times: np.ndarray,  # (M,)
        values: np.ndarray,  # (M, O) probabilities or raw-unit forecasts
        *,
        label_index: np.ndarray | None = None,  # (M,)
        labels: Sequence[str] = (),
        probability: np.ndarray | None = None,  # (M,)
        anomaly: np.ndarray | None = None,  # (M,) NaN: no score
        threshold: float = np.inf,
        alarm: np.ndarray | None = None,  # (M,) bool: the bundle's alarm rule (None: no rule, score >= threshold)
        half_width: Sequence[float] | None = None,  # (O,) raw units
        warming: np.ndarray | None = None,  # (M,) bool
        flags: dict[int, list[str]] | None = None,  # by row
        latency_us: float = 0.0,
        model: str = "",
    ) -> None:
        self.stream_ids = stream_ids
        self.rows = rows
        self.times, self.values = times, values
        self.label_index, self.labels, self.probability = label_index, labels, probability
        self.anomaly, self.threshold, self.half_width = anomaly, threshold, half_width
        self.alarm = alarm
        self.warming, self.flags = warming, flags or {}
        self.latency_us, self.model = latency_us, model

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> Prediction | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[Prediction | None]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = int(self.rows[i])
        if r < 0:
            return None
        values = self.values[r].tolist()
        flags = list(self.flags.get(r, ()))
        if self.warming is not None and self.warming[r]:
            flags.append("warming_up")
        pred = Prediction(
            seq=0,  # given by the publisher
            time=float(self.times[r]),
            stream=self.stream_ids[i],
            values=values,
            latency_us=self.latency_us,
            model=self.model,
            flags=flags,
        )
        if self.label_index is not None:
            k = int(self.label_index[r])
            pred.label = self.labels[k] if self.labels else str(k)
            pred.probability = float(self.probability[r]) if self.probability is not None else values[k]
        if self.anomaly is not None:
            score = float(self.anomaly[r])
            if score == score:  # not NaN
                pred.anomaly = score
                pred.is_anomaly = bool(self.alarm[r]) if self.alarm is not None else score >= self.threshold
        if self.half_width is not None:
            pred.interval = [[v - h, v + h] for v, h in zip(values, self.half_width, strict=True)]
        return pred

    def is_anomaly(self, rows: np.ndarray) -> np.ndarray:
        """(K,) bool `is_anomaly` of rows `rows` (K,) of an anomaly batch (False where there is no score)."""
        assert self.anomaly is not None
        if self.alarm is not None:
            return self.alarm[rows] & np.isfinite(self.anomaly[rows])
        return np.nan_to_num(self.anomaly[rows].astype(np.float64), nan=-np.inf) >= self.threshold

    def __iter__(self) -> Iterator[Prediction | None]:
        for i in range(len(self)):
            yield self[i]

    def predictions(self) -> list[Prediction]:
        """The predictions made, skipping the readings that made none."""
        return [p for p in self if p is not None]


def join_batches(batches: Sequence[PredictionBatch]) -> PredictionBatch:
    """One batch with the entries of `batches` in order (batches of one predictor: same labels and model)."""
    if len(batches) == 1:
        return batches[0]
    made = [b for b in batches if len(b.times)]
    base = made[0] if made else batches[0]
    rows: list[np.ndarray] = []
    flags: dict[int, list[str]] = {}
    ids: list[str] = []
    offset = 0
    for b in batches:
        ids.extend(b.stream_ids)
        rows.append(np.where(b.rows >= 0, b.rows + offset, -1))
        flags.update({r + offset: f for r, f in b.flags.items()})
        offset += len(b.times)

    def cat(name: str) -> Any:
        parts = [getattr(b, name) for b in made]
        return None if not parts or parts[0] is None else np.concatenate(parts)

    warming = None
    if any(b.warming is not None for b in made):
        warming = np.concatenate([b.warming if b.warming is not None else np.zeros(len(b.times), bool) for b in made])
    return PredictionBatch(
        ids,
        np.concatenate(rows) if rows else np.zeros(0, np.int64),
        cat("times") if made else base.times,
        cat("values") if made else base.values,
        label_index=cat("label_index"),
        labels=base.labels,
        probability=cat("probability"),
        anomaly=cat("anomaly"),
        threshold=base.threshold,
        alarm=cat("alarm"),
        half_width=base.half_width,
        warming=warming,
        flags=flags,
        latency_us=sum(b.latency_us for b in batches) / len(batches),  # per call, as each batch reports it
        model=base.model,
    )
