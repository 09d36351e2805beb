"""Task-head settings calibrated on the validation split, from outputs produced as the device produces them.

What each task calibrates is the task's (`Task.calibrate`): forecast interval half-widths
(`trainer.tasks.forecast`), the anomaly score's scale, threshold and alarm rule (`trainer.tasks.anomaly`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.prep import Part
from trainer.tasks import task_for


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
    alarm's time scale). Returns the checkpoint's `head` (empty for tasks with nothing to calibrate)."""
    return task_for(task).calibrate(
        val,
        raw_outputs,
        warmup=warmup,
        false_alarm_rate=false_alarm_rate,
        false_alarms_per_day=false_alarms_per_day,
        rate=rate,
    )
