"""classify: the class of each reading (per step) or of a whole recording (many-to-one), from a label column.

`Categorical` is what classify shares with generate: logits over classes, cross-entropy, accuracy.
Per-reading target: (L,) int64 class of reading t (-1: unlabelled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.config import ModelConfig
from trainer.checkpoint import Checkpoint, Heldout
from trainer.table import Series
from trainer.tasks.base import Prep, Task

if TYPE_CHECKING:
    import torch


class Categorical(Task):
    categorical = True
    perplexity = False  # the held-out figures also give exp(cross-entropy)

    def loss(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        from torch import nn

        n = int(mask.sum())
        if n == 0:
            return out.sum() * 0.0, 0
        return nn.functional.cross_entropy(out[mask], y[mask]), n

    def scores(
        self, ckpt: Checkpoint, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Heldout
    ) -> dict[str, Any]:
        warmup = int(ckpt.training.get("warmup", 0))
        result = classification_metrics(outs, ys, warmup, ckpt.config.output_size, perplexity=self.perplexity)
        if ckpt.training.get("recordings"):
            result["accuracy_by_fraction"] = accuracy_by_fraction(outs, ys)
        return result

    def windowed(self, results: list[tuple[Any, np.ndarray]], prep: Prep) -> dict[str, Any]:
        hits = total = 0
        for batch, out in results:
            pred = out.argmax(-1)
            hits += int(((pred == batch.y) & batch.mask).sum())
            total += int(batch.mask.sum())
        return {"accuracy": hits / max(total, 1)}

    def headline(self, metrics: dict[str, Any]) -> tuple[str, float | None]:
        return "accuracy", metrics.get("accuracy")


class ClassifyTask(Categorical):
    name = "classify"
    labelled = True
    accepts_tokens = True
    poolable = True  # a recording's label is its last full pool's

    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        return "per step" if cfg.per_step else "many-to-one"

    def output_size(self, prep: Prep) -> int:
        return len(prep.labels)

    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        index = {name: i for i, name in enumerate(prep.labels)}
        assert s.label is not None
        y = np.array([index[v] if v is not None else -1 for v in s.label], dtype=np.int64)
        return y, y

    def check_head(self, ckpt: Checkpoint) -> str:
        cfg, n = ckpt.config, len(ckpt.data.labels)
        if n != cfg.output_size:
            return f"classify model has {cfg.output_size} outputs but the checkpoint names {n} labels"
        return ""


def classification_metrics(
    outs: list[np.ndarray], ys: list[np.ndarray], warmup: int, classes: int, perplexity: bool = False
) -> dict[str, Any]:
    logits, labels = _gather(outs, ys, warmup)
    labels = labels.astype(np.int64)
    if not len(labels):
        return {"readings": 0}
    pred = logits.argmax(axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    f1 = []
    for c in range(classes):
        tp = np.sum((pred == c) & (labels == c))
        denom = np.sum(pred == c) + np.sum(labels == c)
        if np.sum(labels == c):
            f1.append(2 * tp / denom)
    ce = float(-logp[np.arange(len(labels)), labels].mean())
    result = {
        "readings": len(labels),
        "accuracy": float(np.mean(pred == labels)),
        "macro_f1": float(np.mean(f1)),
        "cross_entropy": ce,
    }
    if perplexity:
        result["perplexity"] = float(np.exp(min(ce, 50.0)))
    return result


def accuracy_by_fraction(outs: list[np.ndarray], ys: list[np.ndarray], steps: int = 10) -> dict[str, float]:
    """How early a recording's label becomes right: accuracy of the output after the first f of each
    recording's readings (streamed from a reset), for f = 0.1, 0.2, .. 1.0; 1.0 is the device's answer.

    outs (L_i, O) per recording; ys (L_i,) with the recording's class on its last reading (-1 elsewhere).
    """
    hits = np.zeros(steps)
    count = 0
    for out, y in zip(outs, ys, strict=True):
        labelled = np.flatnonzero(y >= 0)
        if not len(labelled):
            continue
        n = int(labelled[-1]) + 1  # the recording ends at its labelled reading
        at = np.ceil(np.arange(1, steps + 1) / steps * n).astype(int) - 1  # (steps,) reading index
        hits += out[at].argmax(axis=1) == y[n - 1]
        count += 1
    return {f"{(k + 1) / steps:.1f}": float(hits[k] / count) for k in range(steps)} if count else {}


def _gather(outs: list[np.ndarray], ys: list[np.ndarray], warmup: int) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for out, y in zip(outs, ys, strict=True):
        keep = (y >= 0) & np.isfinite(out).all(axis=1)
        keep[:warmup] = False
        rows.append(out[keep])
        labels.append(y[keep])
    return np.concatenate(rows), np.concatenate(labels)
