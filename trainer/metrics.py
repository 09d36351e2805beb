"""Quality figures from per-reading model outputs (NumPy only, so the exporter scores artifacts identically).

`heldout_metrics(checkpoint, outputs, heldout)` is the one function that turns what a model emitted at each
held-out reading (logits or scaled forecasts, exactly as a step graph emits them) into the figures of the
training report. The trainer calls it on PyTorch stepped one reading at a time; the exporter calls it on
every artifact. Rows of `outputs` that are NaN mean "no output at this reading" (a window-mode model
before its window is full) and are skipped, as are the first `training["warmup"]` readings of each stream.
What the figures are is the task's (`trainer.tasks`, `Task.scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.checkpoint import Checkpoint, Heldout
from trainer.tasks import task_for


def heldout_metrics(ckpt: Checkpoint, outputs: np.ndarray | list[np.ndarray], heldout: Heldout) -> dict[str, Any]:
    """outputs: (S, L, O) or a list of (L_i, O) per held-out stream, stepped from zero state."""
    ys = [heldout.stream(i)[1] for i in range(len(heldout.x))]  # without padding
    outs = [np.asarray(outputs[i], dtype=np.float64)[: len(y)] for i, y in enumerate(ys)]
    return task_for(ckpt.config.task).scores(ckpt, outs, ys, heldout)
