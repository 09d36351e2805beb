"""One epoch of training or evaluation, over independent windows or with truncated BPTT.

Truncated BPTT (`tbptt`): a batch of long pieces is run `chunk` readings at a time; the state that leaves a
chunk is carried into the next one and detached there, so gradients stop at the chunk boundary while the
network keeps its memory, as on the device that never resets.
Every optimizer step clips the gradient norm first (`optimizer_step`): recurrent nets explode otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainer.model import RecurrentModel, State
from trainer.tasks import task_for
from trainer.windows import Batch


@dataclass
class EpochStats:
    loss: float  # mean loss per counted position
    grad_norm_max: float = 0.0  # largest gradient norm seen before clipping
    clipped: int = 0  # optimizer steps whose gradient was clipped
    steps: int = 0


def masked_loss(task: str, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(mean loss over counted positions, how many counted). out (B, T, O); y (B, T) or (B, T, O); mask (B, T).

    The loss is the task's (`trainer.tasks`): cross-entropy over classes, or squared error on finite targets."""
    return task_for(task).loss(out, y, mask)


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> float:
    """Backward, clip the gradient norm to `clip`, step. Returns the norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip))
    optimizer.step()
    return norm


def tbptt(
    model: RecurrentModel, x: torch.Tensor, chunk: int, state: State | None = None
) -> Iterator[tuple[slice, torch.Tensor, State | None]]:
    """Run x (B, T, ...) `chunk` readings at a time: yields (time slice, y (B, t, O), state that went in).

    The state going into each chunk is the previous chunk's final state, detached: its values carry over,
    its graph does not, so a backward pass on a chunk never reaches into earlier chunks.
    """
    for a in range(0, x.shape[1], chunk):
        sl = slice(a, min(a + chunk, x.shape[1]))
        y, new = model(x[:, sl], state)
        yield sl, y, state
        state = tuple(s.detach() for s in new)


def to_tensors(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(batch.x).to(device)
    y = torch.from_numpy(batch.y).to(device)
    return x, y, torch.from_numpy(batch.mask).to(device)


def run_epoch(
    model: RecurrentModel,
    batches: Iterable[Batch],
    *,
    task: str,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    clip: float = 1.0,
    chunk: int | None = None,
) -> EpochStats:
    """Train (optimizer given) or evaluate one pass. `chunk` set: TBPTT, one optimizer step per chunk."""
    train = optimizer is not None
    model.train(train)
    total, count = 0.0, 0
    stats = EpochStats(loss=float("nan"))
    with torch.set_grad_enabled(train):
        for batch in batches:
            x, y, mask = to_tensors(batch, device)
            for sl, out, _ in tbptt(model, x, chunk or x.shape[1]):
                loss, n = masked_loss(task, out, y[:, sl], mask[:, sl])
                if n == 0:
                    continue
                if optimizer is not None:
                    norm = optimizer_step(model, optimizer, loss, clip)
                    stats.grad_norm_max = max(stats.grad_norm_max, norm)
                    stats.clipped += int(norm > clip)
                    stats.steps += 1
                total += float(loss.detach()) * n
                count += n
    stats.loss = total / count if count else float("nan")
    return stats


@torch.no_grad()
def predict_windows(
    model: RecurrentModel, batches: Iterable[Batch], device: torch.device
) -> list[tuple[Batch, np.ndarray]]:
    """Outputs (B, T, O) of each batch, from zero state per window (the windowed evaluation)."""
    model.eval()
    results = []
    for batch in batches:
        x = torch.from_numpy(batch.x).to(device)
        out, _ = model(x)
        results.append((batch, out.float().cpu().numpy()))
    return results
