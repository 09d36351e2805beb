"""The epochs of one network (`train_epochs`), and of an ensemble of them (`train_members`).

`train_epochs` runs epochs until `epochs`, early stopping (`patience`) or a wall-clock budget, and keeps the
best epoch's weights by validation loss. `train_members` trains K networks of one config from K seeds on
one split and merges them into one (`trainer.ensemble`), scored on the validation split as merged.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgernn.config import ModelConfig
from edgernn.errors import DataError
from trainer.augment import augmented
from trainer.ensemble import merge
from trainer.loop import EpochStats, run_epoch
from trainer.model import RecurrentModel, build_model
from trainer.plan import Plan, batches
from trainer.prep import Prepared
from trainer.windows import Batch

# delta mode: training windows are shifted by up to this many training standard deviations (see `_shifted`)
LEVEL_SHIFT = 3.0


@dataclass
class Members:
    """What `train_members` made: the network to keep (merged when K > 1), the first member's epochs, and
    `best` (the validation loss of the kept network, the first member's best epoch, step totals over all)."""

    model: RecurrentModel
    history: list[dict[str, float]]
    best: dict[str, Any]


def train_members(
    config: ModelConfig,
    prep: Prepared,
    plan: Plan,
    *,
    ensemble: int,
    seed: int,
    lr: float,
    weight_decay: float,
    device: torch.device,
    budget: float | None,
    reseed: Callable[[int], None],
    **epoch_options: Any,
) -> Members:
    """K = `ensemble` networks from seeds `seed`, `seed + 1`, ... (`reseed(s)` seeds every generator; the
    caller has seeded the first), each trained as it would alone on the same split; one network (K = 1) is
    exactly the single run. `budget`
    (wall seconds) is shared equally. With K > 1, `best["ensemble"]` lists each member's seed, best epoch,
    epochs run and validation loss, and `best["val_loss"]` is the merged network's."""
    runs: list[tuple[RecurrentModel, list[dict[str, float]], dict[str, Any]]] = []
    for m in range(ensemble):
        if m:  # the first member keeps the generators as the caller seeded them: K = 1 is the single run
            reseed(seed + m)
        model = build_model(config).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        history, best = train_epochs(
            model, optimizer, prep, plan, device=device, rng=np.random.default_rng(seed + m),
            desc="train" if ensemble == 1 else f"train {m + 1}/{ensemble}",
            budget=budget / ensemble if budget else None, **epoch_options,
        )  # fmt: skip
        model.load_state_dict(best["state_dict"])
        runs.append((model.eval(), history, best))
    model, history, best = runs[0]
    if ensemble == 1:
        return Members(model, history, best)
    merged = merge([r[0].cpu() for r in runs]).to(device).eval()
    val = run_epoch(merged, batches(prep.val, plan, None), task=plan.task, device=device,
                    chunk=plan.chunk if plan.stateful else None)  # fmt: skip
    totals = {key: sum(r[2][key] for r in runs) for key in ("clipped", "steps")}
    stops = [
        f"network {i + 1} of {ensemble}: {b['budget_stop']}" for i, (_, _, b) in enumerate(runs) if b.get("budget_stop")
    ]
    kept = {
        **best,
        **totals,
        "val_loss": val.loss,
        "grad_norm_max": max(r[2]["grad_norm_max"] for r in runs),
        "state_dict": copy.deepcopy(merged.state_dict()),
        "ensemble": [
            {
                "seed": seed + i,
                "best_epoch": b["epoch"],
                "epochs_run": len(h),
                "val_loss": float(b["val_loss"]),
                "val_curve": [float(e["val_loss"]) for e in h],  # for curve.png: each network's validation loss
            }
            for i, (_, h, b) in enumerate(runs)
        ],
    }
    kept.pop("budget_stop", None)
    if stops:
        kept["budget_stop"] = "; ".join(stops)
    return Members(merged, history, kept)


def train_epochs(
    model: RecurrentModel,
    optimizer: torch.optim.Optimizer,
    prep: Prepared,
    plan: Plan,
    *,
    epochs: int,
    patience: int,
    clip: float,
    device: torch.device,
    rng: np.random.Generator,
    progress: bool,
    augment: tuple[str, ...] = (),
    lr_schedule: str = "none",
    budget: float | None = None,
    desc: str = "train",
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The epochs; `best` holds the best epoch's weights. `lr_schedule` "plateau": the learning rate halves
    when the validation loss has not improved for a quarter of `patience` epochs (down to 1/64 of its start),
    so noisy small-data training settles instead of jumping out of a good minimum. `budget` (wall seconds):
    no epoch starts that would end past it, judged by the last epoch's time; `best["budget_stop"]` then says so
    in one line."""
    from tqdm.auto import tqdm

    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_loss": float("inf"), "epoch": 0, "state_dict": copy.deepcopy(model.state_dict())}
    totals = {"grad_norm_max": 0.0, "clipped": 0, "steps": 0}
    quiet = not progress or not sys.stderr.isatty()
    bar = tqdm(total=epochs, desc=desc, unit="epoch", file=sys.stderr, disable=quiet)
    started = time.perf_counter()
    schedule = None
    if lr_schedule == "plateau":
        start_lr = float(optimizer.param_groups[0]["lr"])
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=max(patience // 4, 1), min_lr=start_lr / 64
        )
    try:
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            stats = run_epoch(
                model,
                augmented(_shifted(batches(prep.train, plan, rng), prep, plan, rng), augment, rng),
                task=plan.task,
                device=device,
                optimizer=optimizer,
                clip=clip,
                chunk=plan.chunk if plan.stateful else None,
            )
            val = run_epoch(
                model,
                batches(prep.val, plan, None),
                task=plan.task,
                device=device,
                chunk=plan.chunk if plan.stateful else None,
            )
            _accumulate(totals, stats)
            if not np.isfinite(stats.loss):
                raise DataError(f"training diverged at epoch {epoch} (loss {stats.loss}); lower lr (--lr)")
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": stats.loss,
                    "val_loss": val.loss,
                    "grad_norm_max": stats.grad_norm_max,
                    "lr": float(optimizer.param_groups[0]["lr"]),  # this epoch's (a schedule may lower it after)
                }
            )
            if schedule is not None and np.isfinite(val.loss):
                schedule.step(val.loss)
            if val.loss < best["val_loss"] - 1e-6 * abs(best["val_loss"]) or not np.isfinite(best["val_loss"]):
                best = {"val_loss": val.loss, "epoch": epoch, "state_dict": copy.deepcopy(model.state_dict())}
            bar.set_postfix(train=f"{stats.loss:.4g}", val=f"{val.loss:.4g}", best=best["epoch"])
            bar.update(1)
            if epoch - best["epoch"] >= patience:
                break
            now = time.perf_counter()
            if budget is not None and epoch < epochs and (now - started) + (now - epoch_start) > budget:
                best["budget_stop"] = (
                    f"time budget: stopped after epoch {epoch} of {epochs}, {now - started:.1f} s of {budget:g} s "
                    f"(an epoch takes {now - epoch_start:.1f} s); kept epoch {best['epoch']}, the best so far "
                    f"(validation loss {best['val_loss']:.4g})"
                )
                break
    finally:
        bar.close()
    best.update(totals)
    return history, best


def _shifted(items: Iterator[Batch], prep: Prepared, plan: Plan, rng: np.random.Generator) -> Iterator[Batch]:
    """Delta mode, windows: each training window's targets moved by its own random level (inputs only: the
    changes it learns are the same at any level), so the network meets levels beyond the training range,
    as a drifting sensor's device will. Stateful lanes are left alone (a shift between chunks is a jump)."""
    if prep.target_mode != "delta" or plan.stateful:
        yield from items
        return
    cols = [prep.table.features.index(t) for t in prep.table.targets]
    for b in items:
        shift = rng.uniform(-LEVEL_SHIFT, LEVEL_SHIFT, (len(b.x), 1, len(cols))).astype(np.float32)  # (B, 1, n_t)
        x = b.x.copy()
        x[:, :, cols] += shift
        yield Batch(x, b.y, b.mask)


def _accumulate(totals: dict[str, Any], stats: EpochStats) -> None:
    totals["grad_norm_max"] = max(totals["grad_norm_max"], stats.grad_norm_max)
    totals["clipped"] += stats.clipped
    totals["steps"] += stats.steps


