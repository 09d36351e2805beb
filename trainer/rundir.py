"""The run directory: what goes into it, and writing it all-or-nothing."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.errors import ConfigError
from trainer.checkpoint import CHECKPOINT_FILE, HELDOUT_FILE, Checkpoint, Heldout, load_checkpoint, save_checkpoint
from trainer.plan import Plan
from trainer.prep import Prepared
from trainer.report import write_curve
from trainer.tasks import task_for

RUN_FILES = (CHECKPOINT_FILE, HELDOUT_FILE, "curve.png", "summary.json")


def check_out(run_dir: Path) -> None:
    if not run_dir.exists():
        return
    if not run_dir.is_dir() or (any(run_dir.iterdir()) and not (run_dir / CHECKPOINT_FILE).exists()):
        raise ConfigError(f"output {str(run_dir)!r} exists and is not a run directory; choose a new --out")


_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "clip", "patience", "scaler", "false_alarm_rate")


def training_info(plan: Plan, **kw: Any) -> dict[str, Any]:
    return {
        "mode": kw["mode"],
        "window": plan.window,
        "stride": plan.stride if not plan.stateful else None,
        "chunk": plan.chunk if plan.stateful else None,
        "segment": plan.segment if plan.stateful else None,
        "many_to_one": plan.many_to_one,
        "loss_on": "every reading of each recording (its label)"
        if plan.spread
        else "last reading of each recording"
        if plan.sequences and plan.many_to_one
        else "last reading of each window"
        if plan.last_only and not plan.stateful
        else "every reading with a target",
        "warmup": plan.warmup,
        "device_mode": plan.device_mode,
        **{
            k: kw[k]
            for k in (*_OPTIONS, "false_alarms_per_day")
            if k in kw
        },
    }


def provenance(prep: Prepared, seed: int, device: torch.device) -> dict[str, Any]:
    import pandas

    from edgernn import __version__

    return {
        "data_sha256": prep.table.sha256,
        "data_source": prep.table.source,
        "split": prep.bounds,
        "seed": seed,
        "device": str(device),
        "versions": {
            "edgernn": __version__,
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "pandas": pandas.__version__,
            "python": platform.python_version(),
        },
    }


def make_summary(
    ckpt: Checkpoint, prep: Prepared, plan: Plan, history: list[dict[str, float]], best: dict[str, Any], run_dir: Path
) -> dict[str, Any]:
    t = prep.table
    training = dict(ckpt.training)
    training.update(
        {
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"],
            "stopped_early": len(history) < ckpt.training["epochs"],
            "device": ckpt.provenance["device"],
            "grad_norm_max": best["grad_norm_max"],
            "clipped_steps": best["clipped"],
            "steps": best["steps"],
        }
    )
    io = task_for(prep.task).describe(ckpt.config, len(t.targets))
    return {
        "run_dir": str(run_dir),
        "files": list(RUN_FILES),
        "io": io,
        "model": ckpt.config.to_dict(),
        "data": {
            "source": t.source,
            "kind": t.kind,
            "recordings": len(t.series),
            "readings": t.readings,
            "dropped_rows": t.dropped_rows,
            "features": t.features,
            "targets": t.targets,
            "labels": prep.labels,
            "sample_rate": t.sample_rate,
            "sha256": t.sha256,
        },
        "split": {"by": prep.bounds["by"], "readings": {p.name: p.readings for p in prep.parts()}},
        "training": training,
        "head": ckpt.head,
        "metrics": ckpt.metrics,
        "history": history,
        "provenance": ckpt.provenance,
    }


def write_run(
    run_dir: Path,
    ckpt: Checkpoint,
    heldout: Heldout,
    history: list[dict[str, float]],
    best_epoch: int,
    summary: dict[str, Any],
) -> None:
    """Everything goes into a temporary sibling directory first, then replaces `run_dir` in one rename."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
    old: Path | None = None
    try:
        save_checkpoint(ckpt, tmp / CHECKPOINT_FILE)
        load_checkpoint(tmp / CHECKPOINT_FILE)  # the promise: it loads with torch.load(weights_only=True)
        heldout.save(tmp / HELDOUT_FILE)
        title = f"{ckpt.config.cell} {ckpt.config.task} ({summary['training']['mode']})"
        by_fraction = (ckpt.metrics.get("streaming") or {}).get("accuracy_by_fraction")
        members = [m["val_curve"] for m in summary["training"].get("ensemble_members") or []]
        write_curve(history, best_epoch, tmp / "curve.png", title, ckpt.config.task, by_fraction, members or None)
        (tmp / "summary.json").write_text(json.dumps(plain(summary), indent=2, allow_nan=False) + "\n")
        os.chmod(tmp, 0o755)
        if run_dir.exists():
            old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
            run_dir.rename(old)
        tmp.rename(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not run_dir.exists():
            old.rename(run_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def plain(o: Any) -> Any:
    """JSON-ready: NumPy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return plain(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, str):
        return str(o)  # str subclasses (torch's TorchVersion) would not load with weights_only=True
    return o
