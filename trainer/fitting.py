"""`fit(...)`: data -> time-ordered split -> windows or TBPTT -> model -> checkpoint, measured streaming.

The run directory is written to a temporary sibling and moved into place at the end, so a failed or
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.config import ModelConfig
from edgernn.errors import ConfigError
from trainer.augment import parse_augment
from trainer.automode import choose_mode
from trainer.baselines import detect_season
from trainer.checkpoint import Checkpoint, DataSpec
from trainer.defaults import defaults
from trainer.ensemble import check_ensemble
from trainer.epochs import train_members
from trainer.evaluate import device_outputs, streaming_metrics, windowed_metrics
from trainer.heldout import build_heldout
from trainer.heldout import history as history_of
from trainer.model import RecurrentModel
from trainer.plan import Plan, check_enough, check_options, make_plan
from trainer.pooling import check_pool, pool_table, raw_ranges
from trainer.prep import TARGET_MODES, Prepared, prepare
from trainer.recordings import AUTO_READOUTS, choose_readout, load_tables, recordings_info
from trainer.report import summary_text
from trainer.rundir import check_out, make_summary, plain, provenance, training_info, write_run
from trainer.table import DataLike
from trainer.tasks import task_for
from trainer.tasks.forecast import to_raw


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Checkpoint
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


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
    dropout: float | None = None,
    per_step: bool = False,
    embedding_dim: int = 32,
    mode: str = "windows",
    stride: int | None = None,
    chunk: int | None = None,
    segment: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    clip: float = 1.0,
    patience: int | None = None,
    seed: int = 0,
    device: str = "auto",
    scaler: str = "standard",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_by: str = "auto",
    split_order: str = "stratified",
    train_on: str = "auto",
    recording_loss: str | None = None,
    readout: str | None = None,
    augment: str | None = None,
    lr_schedule: str | None = None,
    ensemble: int | None = None,
    val_data: DataLike | None = None,
    test_data: DataLike | None = None,
    drop_nan: bool = False,
    false_alarm_rate: float = 0.01,
    false_alarms_per_day: float | None = None,
    warmup: int | None = None,
    heldout_readings: int = 16384,
    progress: bool = True,
    verbose: bool = True,
    target_mode: str = "level",
    season: int | None = None,
    pool: int = 1,
    max_train_seconds: float | None = None,
) -> TrainResult:
    """Train a recurrent model and write a run directory (see `trainer.checkpoint` for its contents).

    Classification is many-to-one (a label per window / sequence) unless `per_step`; forecasts predict the
    next `horizon` values of `target`; anomaly forecasts the next reading and scores its residual;
    generate predicts the next token. `mode="stateful"` trains with truncated BPTT over contiguous streams.
    Forecast / anomaly: `target_mode` "delta" learns each target's change from its latest reading (the
    device adds the reading back), "auto" trains both and chooses on the streamed validation split
    (`trainer.automode`); `season` (readings) sets the seasonal-naive baseline (None: detected from the training split).
    `max_train_seconds`: a wall-clock budget for the epochs; training stops before an epoch that would end past
    it (judged by the last epoch's time; at least one epoch runs), keeps the best epoch so far and says so;
    an "auto" target mode or readout splits it between its candidates.
    Labelled recordings (one label per series, or arrays of sequences) train whole (`trainer.recordings`);
    `val_data` / `test_data` are given validation / test splits. Options left None take the defaults of
    `trainer.defaults.DEFAULTS` for the kind of data.
    """
    started = time.perf_counter()
    tuned = {
        "epochs": epochs,
        "patience": patience,
        "lr": lr,
        "weight_decay": weight_decay,
        "dropout": dropout,
        "batch_size": batch_size,
        "recording_loss": recording_loss,
        "readout": readout,
        "augment": augment,
        "lr_schedule": lr_schedule,
        "ensemble": ensemble,
    }
    check_options(**{**locals(), **defaults("streams", tuned)})
    _check_forecast_options(task, target_mode, season)
    if max_train_seconds is not None and not max_train_seconds > 0:
        raise ConfigError(f"max_train_seconds must be > 0 seconds, got {max_train_seconds!r}")
    if readout == "auto" and not task_for(task).labelled:
        raise ConfigError(f"readout 'auto' chooses by the classification loss: it needs task 'classify', got {task!r}")
    check_pool(pool, task=task, bidirectional=bidirectional, tokens=False)
    run_dir = Path(out)
    check_out(run_dir)
    torch_device = _device(device)
    _seed(seed)

    table, given, whole = load_tables(
        data,
        val_data=val_data,
        test_data=test_data,
        train_on=train_on,
        task=task,
        target=target,
        features=features,
        time_column=time_column,
        series_column=series_column,
        anomaly_column=anomaly_column,
        drop_nan=drop_nan,
        per_step=per_step,
    )
    raw_lo_hi = None
    if pool > 1:  # the model steps on means of `pool` readings, as the device will (trainer.pooling)
        check_pool(pool, task=task, bidirectional=bidirectional, tokens=bool(table.tokens))
        raw_lo_hi = raw_ranges(table)
        table = pool_table(table, pool)
        given = {n: pool_table(t, pool, "validation data" if n == "val" else "test data") for n, t in given.items()}
    chosen = defaults("recordings" if whole else "streams", tuned)
    epochs, patience, lr, weight_decay, dropout, batch_size, recording_loss, readout, augment, lr_schedule, ensemble = (
        chosen[k] for k in tuned
    )
    if tuned["ensemble"] is None and (bidirectional or table.tokens):
        ensemble = 1  # the default ensemble merges forward networks of numeric readings (trainer.ensemble)
    check_ensemble(ensemble, bidirectional=bidirectional, tokens=bool(table.tokens))
    kinds = parse_augment(augment)
    if kinds and not whole:
        raise ConfigError(
            f"augment {augment!r} changes whole labelled recordings; this data trains as streams: use 'none'"
        )
    if tuned["readout"] is None and bidirectional:
        readout = "last"  # a window-mode model reads its window's last step (ModelConfig refuses a running mean)
    by = split_by if split_by != "auto" else ("sequence" if table.kind == "sequences" else "time")
    if by == "time" and table.kind == "sequences" and task_for(task).labelled and not per_step:
        raise ConfigError(
            "split_by='time' cannot split a recording that has one label; use split_by='sequence' "
            "(--split-by sequence)"
            + (", or train_on='windows' (--train-on windows)" if table.source != "arrays" else "")
        )
    choice: dict[str, Any] = {}
    tried: dict[str, _Trained] = {}
    readouts = AUTO_READOUTS if readout == "auto" else (readout,)  # classify: one target mode, level
    candidates = [(tm, ro) for tm in _candidates(target_mode, table.targets, table.features) for ro in readouts]
    for tm, ro in candidates:
        _seed(seed)  # each candidate trains as it would alone
        prep = prepare(
            table,
            task=task,
            horizon=horizon,
            scaler=scaler,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split_by=by,
            target_mode=tm,
            split_order=split_order,
            seed=seed,
            given=given,
        )
        if raw_lo_hi is not None:  # the device checks each raw reading, before pooling, against these
            prep.ranges = {"min": raw_lo_hi[0].astype(float).tolist(), "max": raw_lo_hi[1].astype(float).tolist()}
        plan = make_plan(
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
            recording_loss=recording_loss,
        )
        check_enough(prep, plan)
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
            readout=ro,
        )
        trained = train_members(
            config, prep, plan, ensemble=ensemble, seed=seed, lr=lr, weight_decay=weight_decay,
            device=torch_device, budget=max_train_seconds / len(candidates) if max_train_seconds else None,
            reseed=_seed, epochs=epochs, patience=patience, clip=clip, progress=progress, augment=kinds,
            lr_schedule=lr_schedule,
        )  # fmt: skip
        model, history, best = trained.model, trained.history, trained.best
        config = model.config  # an ensemble's is K times wider
        if best.get("budget_stop") and verbose:
            print(best["budget_stop"], flush=True)
        # validation outputs as the device will produce them (raw units): head calibration, and auto's choice
        val_outputs = device_outputs(model, prep.val, plan, torch_device, step=False)
        raw_val = []
        if prep.target_scaler:
            lev = [s.target if tm == "delta" else None for s in prep.val.series]
            raw_val = [to_raw(o, prep.target_scaler, horizon, v) for o, v in zip(val_outputs, lev, strict=True)]
        tried[ro if readout == "auto" else tm] = _Trained(prep, plan, config, model, history, best, raw_val)
    if readout == "auto":
        choice = choose_readout({ro: float(t.best["val_loss"]) for ro, t in tried.items()})
    # (readout auto needs task classify, whose target mode is level: the two choices never meet)
    if target_mode == "auto":
        choice = _choose_mode(tried, plan.warmup, horizon)
    prep, plan, config, model, history, best, raw_val = tried[choice.get("chosen", target_mode)].unpack()
    train_seconds = time.perf_counter() - started

    # --- head calibration on validation, as the device will run
    head = task_for(task).calibrate(
        prep.val, raw_val, warmup=plan.warmup, false_alarm_rate=false_alarm_rate,
        false_alarms_per_day=false_alarms_per_day, rate=table.sample_rate,
    )  # fmt: skip
    season_info = _season(prep, season)

    # --- test metrics: streaming over the held-out sample, and windowed over the whole test split
    heldout = build_heldout(
        prep.test, streams=not plan.sequences, max_readings=heldout_readings, min_length=plan.warmup + 2
    )
    training = training_info(
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
        false_alarms_per_day=false_alarms_per_day,
    )
    if max_train_seconds is not None:
        training["max_train_seconds"] = max_train_seconds
        training["stopped_by_time_budget"] = bool(best.get("budget_stop"))
    if task_for(task).forecasts:
        training.update(season_info)
        training["target_mode"] = {"requested": target_mode, "used": prep.target_mode, **choice}
    training["pool"] = pool
    training["augment"] = list(kinds)
    training["lr_schedule"] = lr_schedule
    training["ensemble"] = ensemble
    if "ensemble" in best:
        training["ensemble_members"] = best["ensemble"]
    training["readout"] = {"requested": readout, "used": config.readout, **(choice if readout == "auto" else {})}
    heldout.context = history_of(prep, heldout)
    if plan.sequences and plan.many_to_one and plan.device_mode == "stream":
        training["recordings"] = recordings_info(prep)
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
            target_mode=prep.target_mode,
        ),
        head=head,
        training=training,
    )
    metrics = {
        "streaming": streaming_metrics(ckpt, model, heldout, plan, torch_device),
        "windowed": windowed_metrics(model, prep, plan, torch_device),
    }
    ckpt.metrics = plain(metrics)
    ckpt.head = plain(head)
    ckpt.provenance = plain(provenance(prep, seed, torch_device))
    training["seconds"] = round(time.perf_counter() - started, 3)
    training["train_seconds"] = round(train_seconds, 3)

    summary = make_summary(ckpt, prep, plan, history, best, run_dir)
    write_run(run_dir, ckpt, heldout, history, best["epoch"], summary)
    if verbose:
        print(summary_text(summary), flush=True)
    warning = ckpt.metrics["streaming"].get("warning")
    if warning and verbose:
        print(f"WARNING: {warning} {_what_to_try(prep.target_mode, training.get('season'))}", file=sys.stderr)
    return TrainResult(run_dir=run_dir, checkpoint=ckpt, metrics=ckpt.metrics, history=history, summary=summary)


# ------------------------------------------------------------------------------------------ forecast options


@dataclass
class _Trained:
    """One candidate of `target_mode`: its data, plan, model and raw validation forecasts."""

    prep: Prepared
    plan: Plan
    config: ModelConfig
    model: RecurrentModel
    history: list[dict[str, float]]
    best: dict[str, Any]
    raw_val: list[np.ndarray]

    def unpack(self) -> tuple[Any, ...]:
        return self.prep, self.plan, self.config, self.model, self.history, self.best, self.raw_val

    def val_errors(self, warmup: int) -> np.ndarray:
        """(N,) mean absolute error over the outputs of each scored validation reading, raw units (NaN: none)."""
        err = [np.abs(y - o)[warmup:].mean(axis=1) for o, y in zip(self.raw_val, self.prep.val.y_raw, strict=True)]
        return np.concatenate(err) if err else np.zeros(0)


def _check_forecast_options(task: str, target_mode: str, season: int | None) -> None:
    if target_mode not in TARGET_MODES:
        raise ConfigError(f"unsupported target_mode {target_mode!r}; supported: {', '.join(TARGET_MODES)}")
    if target_mode != "level" and not task_for(task).forecasts:
        raise ConfigError(f"target_mode {target_mode!r} applies to forecast and anomaly tasks, not {task!r}")
    if season is not None and (not isinstance(season, int) or season < 2):
        raise ConfigError(f"season must be an integer >= 2 (readings per cycle), got {season!r}")


def _candidates(target_mode: str, targets: list[str], features: list[str]) -> tuple[str, ...]:
    """auto tries delta only where it can run: every target is an input feature."""
    if target_mode != "auto":
        return (target_mode,)
    return ("level", "delta") if all(t in features for t in targets) else ("level",)


def _choose_mode(tried: dict[str, _Trained], warmup: int, horizon: int) -> dict[str, Any]:
    """auto's choice and why (`trainer.automode`), from each candidate's streamed validation errors."""
    errors = {tm: t.val_errors(warmup) for tm, t in tried.items()}
    if "delta" not in tried:
        return choose_mode(errors, horizon)
    prep = tried["delta"].prep
    train = np.concatenate([s.target for s in prep.train.series if s.target is not None])  # (N, n_t)
    val = np.concatenate([s.target for s in prep.val.series if s.target is not None])
    return choose_mode(errors, horizon, train, val)


def _what_to_try(target_mode: str, season: int | None) -> str:
    tips = [] if target_mode == "delta" else ["--target-mode delta (the change from the latest reading extrapolates)"]
    if not season:
        tips.append("--season N if the data has a cycle")
    tips += ["a longer --window or --mode stateful", "more training data"]
    return f"on the streaming test readings. Try {', '.join(tips)}; or deploy the baseline instead."


def _season(prep: Prepared, season: int | None) -> dict[str, Any]:
    """The seasonal-naive baseline's season: given, or detected on the longest training series' first target."""
    if season is not None:
        return {"season": season, "season_from": "--season"}
    longest = max(prep.train.series, key=len)
    found = detect_season(longest.target[:, 0]) if longest.target is not None else None
    return {"season": found, "season_from": "detected on the training split" if found else "none detected"}


# ------------------------------------------------------------------------------------------ set-up


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
