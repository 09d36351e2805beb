"""Test figures: streaming over heldout.npz (as the device runs) and windowed over the test split (as trained)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainer.checkpoint import Checkpoint, Heldout
from trainer.loop import predict_windows
from trainer.metrics import heldout_metrics
from trainer.model import RecurrentModel
from trainer.plan import Plan, batches
from trainer.prep import Part, Prepared
from trainer.stream import sequence_outputs, step_outputs, window_outputs
from trainer.tasks import task_for
from trainer.windows import valid_positions


def device_outputs(model: RecurrentModel, part: Part, plan: Plan, device: torch.device, step: bool) -> list[np.ndarray]:
    if plan.device_mode == "window":
        needed = [valid_positions(y) for y in part.y_raw]
        return window_outputs(model, part.x, plan.window, device, needed=needed)
    return step_outputs(model, part.x, device) if step else sequence_outputs(model, part.x, device)


def streaming_metrics(
    ckpt: Checkpoint, model: RecurrentModel, heldout: Heldout, plan: Plan, device: torch.device
) -> dict[str, Any]:
    streams = [heldout.stream(i) for i in range(len(heldout.x))]  # without padding
    raw_x = [x for x, _ in streams]
    xs = raw_x if ckpt.config.tokens else [ckpt.data.scaler.transform(x).astype(np.float32) for x in raw_x]
    part = Part("heldout", [], x=xs, y_raw=[y for _, y in streams])
    outputs = device_outputs(model, part, plan, device, step=True)
    how = (
        "one reading at a time, state carried from a reset"
        if plan.device_mode == "stream"
        else f"window mode: the last {plan.window} readings re-run at every reading"
    )
    result = heldout_metrics(ckpt, outputs, heldout)
    skipped = f", the first {plan.warmup} of each not scored" if plan.warmup else ""
    return {
        "how": f"{how}, over heldout.npz: {sum(len(x) for x in raw_x)} readings in {_n(len(raw_x), 'stream')}{skipped}",
        **result,
    }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def windowed_metrics(model: RecurrentModel, prep: Prepared, plan: Plan, device: torch.device) -> dict[str, Any]:
    """As trained: independent windows from zero state (or whole recordings, stateful), whole test split."""
    if plan.stateful:
        how = "whole test recordings from a reset, as trained (TBPTT)"
    else:
        how = "independent windows from a reset, as trained" if not plan.sequences else "whole test sequences"
    results = predict_windows(model, batches(prep.test, plan, None), device)
    figures = task_for(prep.task).windowed(results, prep)
    return {"how": how, "windows": sum(len(b) for b, _ in results), **figures}
