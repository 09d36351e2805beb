"""`Task`: what the trainer does differently for one task, the one place each of those rules lives.

A task is chosen once by name (`trainer.tasks.task_for`) and asked by every step that depends on it: the
data loader (which columns it reads), the split (which target a reading has), the loss, the held-out
figures, the head settings calibrated on the validation split, and the checks the exporter makes before
writing a bundle. The runtime's counterpart is `edge_runtime.stream.heads`; the simulator's is
`firmware_sim.tasks`. A new task is a new module here, a line in `trainer.tasks`, and its name in
`edgernn.config.TASKS` (the names a `ModelConfig` accepts).

The task modules are the bottom of the trainer's task-dependent code: they import the data classes
(`trainer.table`, `trainer.checkpoint`) and nothing that dispatches to them, so the splits and the
preparation are seen through the small protocols below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from edgernn.config import ModelConfig
from trainer.checkpoint import Checkpoint, Heldout, Scaler
from trainer.table import Series, Table

if TYPE_CHECKING:
    import torch


class Split(Protocol):
    """What a task reads of one split (`trainer.prep.Part`)."""

    series: list[Series]  # raw readings
    y_raw: list[np.ndarray]  # per-reading targets in raw units


class Prep(Protocol):
    """What a task reads of the prepared data (`trainer.prep.Prepared`)."""

    table: Table
    labels: list[str]
    horizon: int
    target_scaler: Scaler | None
    target_mode: str


class Task(ABC):
    name: ClassVar[str]
    # the data a task reads, asked by the loader, the split and the plan
    labelled: ClassVar[bool] = False  # outputs are the classes of a label column (encoded after the split)
    forecasts: ClassVar[bool] = False  # outputs forecast target columns (target scaler, target mode, baselines)
    multi_step: ClassVar[bool] = False  # a horizon above 1 is allowed
    targets_in_inputs: ClassVar[bool] = False  # every target must be an input feature
    accepts_tokens: ClassVar[bool] = False  # token input (trainer.table.Tokens) is allowed
    tokens_only: ClassVar[bool] = False  # only token input is
    poolable: ClassVar[bool] = False  # `--pool K` (the model sees each K readings' mean) keeps the task's meaning
    # the outputs: logits over classes (cross-entropy, accuracy, probabilities) or values in target units
    categorical: ClassVar[bool] = False

    @abstractmethod
    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        """What one output means, one phrase for the training summary's `io`."""

    @abstractmethod
    def output_size(self, prep: Prep) -> int:
        """Outputs per reading."""

    @abstractmethod
    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        """(raw, training) per-reading targets of one recording (see `trainer.prep`)."""

    @abstractmethod
    def loss(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(mean loss over counted positions, how many counted). out (B, T, O); y (B, T) or (B, T, O); mask (B, T)."""

    @abstractmethod
    def scores(
        self, ckpt: Checkpoint, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Heldout
    ) -> dict[str, Any]:
        """The held-out figures from outputs (L_i, O) and targets of each held-out stream (see `trainer.metrics`)."""

    @abstractmethod
    def windowed(self, results: list[tuple[Any, np.ndarray]], prep: Prep) -> dict[str, Any]:
        """The figure of the test split as trained: (batch, outputs (B, T, O)) pairs of `predict_windows`."""

    @abstractmethod
    def headline(self, metrics: dict[str, Any]) -> tuple[str, float | None]:
        """The one figure the task is judged by (the exporter's int8 check): (key, value)."""

    @property
    def loss_name(self) -> str:
        """The loss, as the training curve's axis says it."""
        return "cross-entropy" if self.categorical else "mean squared error (scaled)"

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
        """Head settings from the validation split (checkpoint `head`); most tasks have none."""
        return {}

    def check_head(self, ckpt: Checkpoint) -> str:
        """Why the checkpoint's head settings do not fit this task ('' when they do): the exporter refuses it."""
        return ""
