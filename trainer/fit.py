"""`fit(...)`: data -> time-ordered split -> windows or TBPTT -> model -> checkpoint, measured streaming.

The run directory is written to a temporary sibling and moved into place at the end, so a failed or
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.config import CELLS, TASKS, ModelConfig
from edgernn.errors import ConfigError, DataError
from trainer.checkpoint import (
    CHECKPOINT_FILE,
    HELDOUT_FILE,
    Checkpoint,
    DataSpec,
    Heldout,
    load_checkpoint,
    save_checkpoint,
)
from trainer.data import DataLike, load
from trainer.head import calibrate
from trainer.heldout import build_heldout
from trainer.loop import EpochStats, predict_windows, run_epoch
from trainer.metrics import heldout_metrics, to_raw
from trainer.model import RecurrentModel, build_model
from trainer.prep import SCALERS, Part, Prepared, prepare
from trainer.report import summary_text, write_curve
from trainer.stream import sequence_outputs, step_outputs, window_outputs
from trainer.windows import count_windows, stream_batches, window_batches

MODES = ("windows", "stateful")
DEVICES = ("auto", "cpu", "cuda")
SPLIT_BY = ("auto", "time", "sequence")
RUN_FILES = (CHECKPOINT_FILE, HELDOUT_FILE, "curve.png", "summary.json")


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Checkpoint
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    """Resolved settings: what the loops need beyond the prepared data."""

    task: str
    stateful: bool
    many_to_one: bool  # classify: one label per window / sequence
    last_only: bool  # only the last reading of each window counts in the loss
    sequences: bool  # independent recordings: each is one window
    window: int
    stride: int
    chunk: int
    segment: int | None
    batch_size: int
    warmup: int
    device_mode: str  # "stream" | "window"


def fit(
    data: DataLike,
    *,
    task: str,
    target: str | list[str] | None = None,
    out: str | Path,
    features: list[str] | None = None,
    time_column: str | None = None,
    series_column: str | None = None,
    anomaly_column: str | None = None,
    cell: str = "gru",
    hidden: int = 64,
    layers: int = 1,
    window: int = 100,
    horizon: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    per_step: bool = False,
    embedding_dim: int = 32,
    mode: str = "windows",
    stride: int | None = None,
    chunk: int | None = None,
    segment: int | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    clip: float = 1.0,
    patience: int = 5,
    seed: int = 0,
    device: str = "auto",
    scaler: str = "standard",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_by: str = "auto",
    drop_nan: bool = False,
    false_alarm_rate: float = 0.01,
    warmup: int | None = None,
    heldout_readings: int = 16384,
    progress: bool = True,
    verbose: bool = True,
) -> TrainResult:
    """Train a recurrent model and write a run directory (see `trainer.checkpoint` for its contents).

    Classification is many-to-one (a label per window / sequence) unless `per_step`; forecasts predict the
    next `horizon` values of `target`; anomaly forecasts the next reading and scores its residual;
    generate predicts the next token. `mode="stateful"` trains with truncated BPTT over contiguous streams.
    """
    started = time.perf_counter()
    _check_options(**locals())
    run_dir = Path(out)
    _check_out(run_dir)
    torch_device = _device(device)
    _seed(seed)

    table = load(
        data,
        task=task,
        target=target,
        features=features,
        time_column=time_column,
        series_column=series_column,
        anomaly_column=anomaly_column,
        drop_nan=drop_nan,
        per_step=per_step,
    )
    by = split_by if split_by != "auto" else ("sequence" if table.kind == "sequences" else "time")
    if by == "time" and table.kind == "sequences" and task == "classify" and not per_step:
        raise ConfigError("split_by='time' cannot split a sequence that has one label; use split_by='sequence'")
    prep = prepare(
        table,
        task=task,
        horizon=horizon,
        scaler=scaler,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_by=by,
    )
    plan = _plan(
        prep,
        task=task,
        per_step=per_step,
        mode=mode,
        window=window,
        stride=stride,
        chunk=chunk,
        segment=segment,
        batch_size=batch_size,
        bidirectional=bidirectional,
        warmup=warmup,
    )
    _check_enough(prep, plan)
    config = ModelConfig(
        cell=cell,
        input_size=1 if table.tokens else len(table.features),
        hidden_size=hidden,
        output_size=prep.output_size,
        num_layers=layers,
        bidirectional=bidirectional,
        dropout=dropout,
        task=task,
        per_step=per_step,
        vocab_size=len(table.vocabulary),
        embedding_dim=embedding_dim if table.tokens else 0,
        horizon=horizon,
    )
    model = build_model(config).to(torch_device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)

    history, best = _train(
        model,
        optimizer,
        prep,
        plan,
        epochs=epochs,
        patience=patience,
        clip=clip,
        device=torch_device,
        rng=rng,
        progress=progress,
    )
    model.load_state_dict(best["state_dict"])
    model.eval()
    train_seconds = time.perf_counter() - started

    # --- head calibration on validation, as the device will run
    val_outputs = _device_outputs(model, prep.val, plan, torch_device, step=False)
    raw_val = [to_raw(o, prep.target_scaler, horizon) for o in val_outputs] if prep.target_scaler else []
    head = calibrate(task, prep.val, raw_val, warmup=plan.warmup, false_alarm_rate=false_alarm_rate)

    # --- test metrics: streaming over the held-out sample, and windowed over the whole test split
    heldout = build_heldout(
        prep.test, streams=not plan.sequences, max_readings=heldout_readings, min_length=plan.warmup + 2
    )
    training = _training_info(
        plan,
        mode=mode,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        clip=clip,
        patience=patience,
        scaler=scaler,
        false_alarm_rate=false_alarm_rate,
    )
    ckpt = Checkpoint(
        config=config,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        data=DataSpec(
            features=table.features,
            scaler=prep.scaler,
            ranges=prep.ranges,
            sample_rate=table.sample_rate,
            labels=prep.labels,
            targets=table.targets,
            target_scaler=prep.target_scaler,
            vocabulary=table.vocabulary,
        ),
        head=head,
        training=training,
    )
    metrics = {
        "streaming": _streaming_metrics(ckpt, model, heldout, plan, torch_device),
        "windowed": _windowed_metrics(model, prep, plan, torch_device),
    }
    ckpt.metrics = _plain(metrics)
    ckpt.head = _plain(head)
    ckpt.provenance = _plain(_provenance(prep, seed, torch_device))
    training["seconds"] = round(time.perf_counter() - started, 3)
    training["train_seconds"] = round(train_seconds, 3)

    summary = _summary(ckpt, prep, plan, history, best, run_dir)
    _write_run(run_dir, ckpt, heldout, history, best["epoch"], summary)
    if verbose:
        print(summary_text(summary), flush=True)
    return TrainResult(run_dir=run_dir, checkpoint=ckpt, metrics=metrics, history=history, summary=summary)


# ------------------------------------------------------------------------------------------ training


def _train(
    model: RecurrentModel,
    optimizer: torch.optim.Optimizer,
    prep: Prepared,
    plan: _Plan,
    *,
    epochs: int,
    patience: int,
    clip: float,
    device: torch.device,
    rng: np.random.Generator,
    progress: bool,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    from tqdm.auto import tqdm

    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_loss": float("inf"), "epoch": 0, "state_dict": copy.deepcopy(model.state_dict())}
    totals = {"grad_norm_max": 0.0, "clipped": 0, "steps": 0}
    quiet = not progress or not sys.stderr.isatty()
    bar = tqdm(total=epochs, desc="train", unit="epoch", file=sys.stderr, disable=quiet)
    try:
        for epoch in range(1, epochs + 1):
            stats = run_epoch(
                model,
                _batches(prep.train, plan, rng),
                task=plan.task,
                device=device,
                optimizer=optimizer,
                clip=clip,
                chunk=plan.chunk if plan.stateful else None,
            )
            val = run_epoch(
                model,
                _batches(prep.val, plan, None),
                task=plan.task,
                device=device,
                chunk=plan.chunk if plan.stateful else None,
            )
            _accumulate(totals, stats)
            if not np.isfinite(stats.loss):
                raise DataError(f"training diverged at epoch {epoch} (loss {stats.loss}); lower lr (--lr)")
            history.append(
                {"epoch": epoch, "train_loss": stats.loss, "val_loss": val.loss, "grad_norm_max": stats.grad_norm_max}
            )
            if val.loss < best["val_loss"] - 1e-6 * abs(best["val_loss"]) or not np.isfinite(best["val_loss"]):
                best = {"val_loss": val.loss, "epoch": epoch, "state_dict": copy.deepcopy(model.state_dict())}
            bar.set_postfix(train=f"{stats.loss:.4g}", val=f"{val.loss:.4g}", best=best["epoch"])
            bar.update(1)
            if epoch - best["epoch"] >= patience:
                break
    finally:
        bar.close()
    best.update(totals)
    return history, best


def _accumulate(totals: dict[str, Any], stats: EpochStats) -> None:
    totals["grad_norm_max"] = max(totals["grad_norm_max"], stats.grad_norm_max)
    totals["clipped"] += stats.clipped
    totals["steps"] += stats.steps


def _batches(part: Part, plan: _Plan, rng: np.random.Generator | None) -> Any:
    if plan.stateful:
        return stream_batches(
            part,
            segment=plan.segment if rng is not None else None,
            chunk=plan.chunk,
            batch_size=plan.batch_size,
            rng=rng,
        )
    return window_batches(
        part,
        window=plan.window,
        stride=plan.stride,
        many_to_one=plan.last_only,
        sequences=plan.sequences,
        batch_size=plan.batch_size,
        rng=rng,
        equal_lengths=plan.device_mode == "window",
    )


# ------------------------------------------------------------------------------------------ evaluation


def _device_outputs(
    model: RecurrentModel, part: Part, plan: _Plan, device: torch.device, step: bool
) -> list[np.ndarray]:
    if plan.device_mode == "window":
        from trainer.windows import valid_positions

        needed = [valid_positions(y) for y in part.y_raw]
        return window_outputs(model, part.x, plan.window, device, needed=needed)
    return step_outputs(model, part.x, device) if step else sequence_outputs(model, part.x, device)


def _streaming_metrics(
    ckpt: Checkpoint, model: RecurrentModel, heldout: Heldout, plan: _Plan, device: torch.device
) -> dict[str, Any]:
    lengths = heldout.lengths if heldout.lengths is not None else [heldout.x.shape[1]] * len(heldout.x)
    raw_x = [heldout.x[i, : int(n)] for i, n in enumerate(lengths)]
    xs = raw_x if ckpt.config.tokens else [ckpt.data.scaler.transform(x).astype(np.float32) for x in raw_x]
    part = Part("heldout", [], x=xs, y_raw=[heldout.y[i, : int(n)] for i, n in enumerate(lengths)])
    outputs = _device_outputs(model, part, plan, device, step=True)
    how = (
        "one reading at a time, state carried from a reset"
        if plan.device_mode == "stream"
        else f"window mode: the last {plan.window} readings re-run at every reading"
    )
    result = heldout_metrics(ckpt, outputs, heldout)
    streams = len(raw_x)
    return {
        "how": f"{how}, over heldout.npz ({sum(len(x) for x in raw_x)} readings in {streams} "
        f"stream{'s' if streams != 1 else ''}, first {plan.warmup} of each not scored)",
        **result,
    }


def _windowed_metrics(model: RecurrentModel, prep: Prepared, plan: _Plan, device: torch.device) -> dict[str, Any]:
    """As trained: independent windows from zero state (or whole recordings, stateful), whole test split."""
    if plan.stateful:
        batches = stream_batches(prep.test, segment=None, chunk=plan.chunk, batch_size=plan.batch_size, rng=None)
        how = "whole test recordings from a reset, as trained (TBPTT)"
    else:
        batches = window_batches(
            prep.test,
            window=plan.window,
            stride=plan.stride,
            many_to_one=plan.last_only,
            sequences=plan.sequences,
            batch_size=plan.batch_size,
            rng=None,
            equal_lengths=plan.device_mode == "window",
        )
        how = "independent windows from a reset, as trained" if not plan.sequences else "whole test sequences"
    results = predict_windows(model, batches, device)
    if prep.task in ("classify", "generate"):
        hits = total = 0
        for batch, out in results:
            pred = out.argmax(-1)
            hits += int(((pred == batch.y) & batch.mask).sum())
            total += int(batch.mask.sum())
        return {"how": how, "windows": sum(len(b) for b, _ in results), "accuracy": hits / max(total, 1)}
    assert prep.target_scaler is not None
    errors = []
    for batch, out in results:
        b, t, o = out.shape
        pred = to_raw(out.reshape(b * t, o), prep.target_scaler, prep.horizon)
        true = to_raw(batch.y.reshape(b * t, o), prep.target_scaler, prep.horizon)
        ok = batch.mask.reshape(-1, 1) & np.isfinite(true)
        errors.append(np.abs(pred - true)[ok])
    err = np.concatenate(errors)
    return {"how": how, "windows": sum(len(b) for b, _ in results), "mae": float(err.mean()) if len(err) else None}


# ------------------------------------------------------------------------------------------ set-up


def _check_options(**kw: Any) -> None:
    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if kw[name] not in allowed:
            raise ConfigError(f"unsupported {name} {kw[name]!r}; supported: {', '.join(allowed)}")

    choice("task", TASKS)
    choice("cell", CELLS)
    choice("mode", MODES)
    choice("device", DEVICES)
    choice("split_by", SPLIT_BY)
    choice("scaler", SCALERS)
    for name in ("hidden", "layers", "window", "horizon", "epochs", "batch_size", "patience", "heldout_readings"):
        if not isinstance(kw[name], int) or kw[name] < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {kw[name]!r}")
    for name in ("stride", "chunk", "segment"):
        if kw[name] is not None and (not isinstance(kw[name], int) or kw[name] < 1):
            raise ConfigError(f"{name} must be an integer >= 1 (or None for the default), got {kw[name]!r}")
    if not kw["lr"] > 0:
        raise ConfigError(f"lr must be > 0, got {kw['lr']!r}")
    if not kw["clip"] > 0:
        raise ConfigError(f"clip must be > 0 (gradient clipping is always on), got {kw['clip']!r}")
    if not 0.0 < kw["false_alarm_rate"] < 1.0:
        raise ConfigError(f"false_alarm_rate must be in (0, 1), got {kw['false_alarm_rate']!r}")
    if kw["mode"] == "stateful" and kw["bidirectional"]:
        raise ConfigError("a bidirectional model cannot carry state across chunks; use mode 'windows'")
    if kw["task"] != "forecast" and kw["horizon"] != 1:
        raise ConfigError(f"horizon applies to task 'forecast' only, got horizon={kw['horizon']} for {kw['task']!r}")
    if kw["per_step"] and kw["task"] != "classify":
        raise ConfigError(f"per_step applies to task 'classify' only (other tasks emit every step), got {kw['task']!r}")


def _check_out(run_dir: Path) -> None:
    if not run_dir.exists():
        return
    if not run_dir.is_dir() or (any(run_dir.iterdir()) and not (run_dir / CHECKPOINT_FILE).exists()):
        raise ConfigError(f"output {str(run_dir)!r} exists and is not a run directory; choose a new --out")


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device 'cuda' requested but CUDA is not available to this torch ({torch.__version__}); "
            "use device 'cpu' or 'auto'"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _plan(
    prep: Prepared,
    *,
    task: str,
    per_step: bool,
    mode: str,
    window: int,
    stride: int | None,
    chunk: int | None,
    segment: int | None,
    batch_size: int,
    bidirectional: bool,
    warmup: int | None,
) -> _Plan:
    many_to_one = task == "classify" and not per_step
    # A bidirectional model's backward half reads the future inside a window, so a loss on any reading
    # but the last (the one window mode emits on the device) would let it read its own targets.
    last_only = many_to_one or bidirectional
    sequences = prep.table.kind == "sequences" and not (bidirectional and not many_to_one)
    if sequences:
        window = max(len(s) for s in prep.train.series)  # a sequence is its own window
    chunk = chunk or window
    stateful = mode == "stateful"
    if segment is None and stateful:
        lanes_len = prep.train.readings // max(batch_size, 1)
        segment = max(4 * chunk, -(-lanes_len // chunk) * chunk)
    if warmup is None:
        # outputs the model was never trained to give: before a window is full (windows-trained
        # many-to-one on streams, or any window-mode model)
        warmup = window - 1 if not sequences and not stateful and (many_to_one or bidirectional) else 0
    return _Plan(
        task=task,
        stateful=stateful,
        many_to_one=many_to_one,
        last_only=last_only,
        sequences=sequences,
        window=window,
        stride=stride or max(1, window // 4),
        chunk=chunk,
        segment=segment,
        batch_size=batch_size,
        warmup=warmup,
        device_mode="window" if bidirectional else "stream",
    )


def _check_enough(prep: Prepared, plan: _Plan) -> None:
    for part in prep.parts():
        longest = max((len(s) for s in part.series), default=0)
        if plan.stateful or plan.sequences:
            if longest < 2:
                raise DataError(f"the {_split_name(part)} split has no recording of 2 or more readings")
            continue
        if count_windows(part, plan.window, plan.stride, plan.last_only, plan.sequences) == 0:
            need = plan.window + (prep.horizon if prep.task in ("forecast", "anomaly") else 0)
            raise DataError(
                f"fewer rows than one window: the {_split_name(part)} split's longest recording has {longest} "
                f"readings ({prep.table.readings} rows in all), a window needs {need}; lower window (--window) "
                "or give more data"
            )


def _split_name(part: Part) -> str:
    return {"train": "training", "val": "validation", "test": "test"}.get(part.name, part.name)


def _training_info(plan: _Plan, **kw: Any) -> dict[str, Any]:
    return {
        "mode": kw["mode"],
        "window": plan.window,
        "stride": plan.stride if not plan.stateful else None,
        "chunk": plan.chunk if plan.stateful else None,
        "segment": plan.segment if plan.stateful else None,
        "many_to_one": plan.many_to_one,
        "loss_on": "last reading of each window"
        if plan.last_only and not plan.stateful
        else "every reading with a target",
        "warmup": plan.warmup,
        "device_mode": plan.device_mode,
        **{
            k: kw[k]
            for k in ("epochs", "batch_size", "lr", "weight_decay", "clip", "patience", "scaler", "false_alarm_rate")
        },
    }


def _provenance(prep: Prepared, seed: int, device: torch.device) -> dict[str, Any]:
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


def _summary(
    ckpt: Checkpoint, prep: Prepared, plan: _Plan, history: list[dict[str, float]], best: dict[str, Any], run_dir: Path
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
    io = {
        "classify": "per step" if ckpt.config.per_step else "many-to-one",
        "forecast": f"next {ckpt.config.horizon} of {len(t.targets)} target(s)",
        "anomaly": "forecast-residual score",
        "generate": "next token",
    }[prep.task]
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


def _write_run(
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
        write_curve(history, best_epoch, tmp / "curve.png", title)
        (tmp / "summary.json").write_text(json.dumps(_plain(summary), indent=2, allow_nan=False) + "\n")
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


def _plain(o: Any) -> Any:
    """JSON-ready: NumPy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, str):
        return str(o)  # str subclasses (torch's TorchVersion) would not load with weights_only=True
    return o
