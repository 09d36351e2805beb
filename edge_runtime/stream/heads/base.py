"""`Head`: what a task makes of the model's outputs, the one place a task's postprocessing lives.

A head is chosen once from the manifest (`heads.head_for`) and serves every stepping path: `one` for
`step_one` (a handful of outputs in plain Python), `many` for `step_many` and `block` for `step_block`
(NumPy over rows). Heads that remember something per stream between readings (the last output for a
rollout, the last forecast for an anomaly score) keep it in the `StreamTable`'s per-slot arrays, so it
is checkpointed and restored with the recurrent state. Stateless parts get no-op defaults.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from edge_runtime.backends.base import Backend
from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.guard import InputGuard
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import StreamTable
from edgernn.errors import ConfigError

Index = slice | np.ndarray  # table slots: all of them (a slice) or a gather index
Fields = dict[str, Any]  # a head's keyword arguments of `PredictionBatch` (label_index, anomaly, ...)
Vals = list[float] | None  # one reading's raw values (None: a token)
Subst = frozenset[int] | None  # one reading's feature indices not measured (held or imputed)


class Head(ABC):
    task: ClassVar[str]
    # what `edgernn inspect` shows of the task: quality figures (key in a manifest quality entry, column
    # header), and whether they stand next to the forecasting baselines (persistence, seasonal naive, drift)
    quality_columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    baselines: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def describe(cls, manifest: Manifest) -> str:
        """What the outputs are, one phrase for `edgernn inspect` (e.g. "labels walk, run")."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.n_out = manifest.model.output_size
        # input columns of the targets a head compares with or adds back to (forecast, anomaly); sizes the
        # table's per-stream forecast memory
        self.targets: list[int] = []

    @abstractmethod
    def one(self, pred: Prediction, y: np.ndarray, tab: StreamTable, s: int, vals: Vals, subst: Subst) -> None:
        """Fill `pred`'s values and task fields from the outputs y (1, O) of one reading of stream slot `s`."""

    @abstractmethod
    def many(
        self,
        y: np.ndarray,  # (M, O)
        tab: StreamTable,
        sel: Index,  # (M,) slots
        actual: np.ndarray,  # (M, C) raw readings y was made at (tokens: (M,))
        subst: dict[int, frozenset[int]],  # by row: feature indices not measured
    ) -> tuple[np.ndarray, Fields]:
        """(M, O) values and the batch's task fields for M readings."""

    @abstractmethod
    def block(self, y: np.ndarray, tab: StreamTable, sel: Index, x_raw: np.ndarray) -> tuple[np.ndarray, Fields]:
        """K ticks of N streams at once: y (K, N, O), x_raw (K, N, C) -> (K * N, O) values, tick-major."""

    def held_one(self, y: np.ndarray, tab: StreamTable, s: int, vals: list[float] | None) -> None:
        """A reading held back while warming up: nothing is published, a head may still remember it."""
        return  # no-op default: most heads remember nothing between readings

    def held_many(self, y: np.ndarray, tab: StreamTable, sel: Index, actual: np.ndarray) -> None:
        """`held_one` for M readings: y (M, O), actual (M, C)."""
        return

    def check_rollout(self, k: int) -> None:
        """Raise ConfigError unless `rollout(k)` can run on this head."""
        raise ConfigError(f"rollout needs a forecast or anomaly model; this bundle's task is {self.task!r}")

    def rollout(
        self, k: int, tab: StreamTable, s: int, guard: InputGuard, backend: Backend
    ) -> tuple[list[float], list[list[float]] | None]:
        """k steps ahead from slot `s`'s latest reading, its state untouched -> (values, interval)."""
        self.check_rollout(k)  # raises: this head does not forecast its inputs
        raise NotImplementedError
