"""What a training run will do, resolved from the options and the prepared data; option checks.

A `Plan` holds what the loops and the evaluation need beyond the data: windows or TBPTT, the window and
chunk sizes, which readings count in the loss, the warm-up after a reset, and how the device will run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgernn.config import CELLS, READOUTS
from edgernn.errors import ConfigError, DataError
from trainer.augment import parse_augment
from trainer.prep import SCALERS, Part, Prepared
from trainer.tasks import TASKS, task_for
from trainer.windows import Batch, count_windows, stream_batches, window_batches

MODES = ("windows", "stateful")
DEVICES = ("auto", "cpu", "cuda")
SPLIT_BY = ("auto", "time", "sequence")


@dataclass
class Plan:
    """Resolved settings: what the loops need beyond the prepared data."""

    task: str
    stateful: bool
    many_to_one: bool  # classify: one label per window / sequence
    last_only: bool  # only the last reading of each window counts in the loss
    sequences: bool  # independent recordings: each is one window
    spread: bool  # whole recordings: training loss on every reading's output (the label is the recording's)
    window: int
    stride: int
    chunk: int
    segment: int | None
    batch_size: int
    warmup: int
    device_mode: str  # "stream" | "window"


def batches(part: Part, plan: Plan, rng: np.random.Generator | None) -> Iterator[Batch]:
    """Training batches (`rng` shuffles) or evaluation batches (`rng=None`) of one split."""
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
        last_only=plan.last_only,
        sequences=plan.sequences,
        batch_size=plan.batch_size,
        rng=rng,
        spread=plan.spread and rng is not None,  # validation and test: judged at the last reading only
    )


def check_options(**kw: Any) -> None:
    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if kw[name] not in allowed:
            raise ConfigError(f"unsupported {name} {kw[name]!r}; supported: {', '.join(allowed)}")

    choice("task", tuple(TASKS))
    choice("cell", CELLS)
    choice("mode", MODES)
    choice("device", DEVICES)
    choice("split_by", SPLIT_BY)
    choice("scaler", SCALERS)
    choice("recording_loss", ("last", "every"))
    choice("readout", (*READOUTS, "auto"))
    choice("lr_schedule", ("none", "plateau"))
    parse_augment(kw["augment"])  # a ConfigError names an unknown kind
    counts = ["hidden", "layers", "window", "horizon", "epochs", "batch_size", "patience", "heldout_readings"]
    counts.append("ensemble")
    for name in counts:
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
    if kw.get("false_alarms_per_day") is not None and not kw["false_alarms_per_day"] > 0:
        raise ConfigError(f"false_alarms_per_day must be > 0, got {kw['false_alarms_per_day']!r}")
    if kw["mode"] == "stateful" and kw["bidirectional"]:
        raise ConfigError("a bidirectional model cannot carry state across chunks; use mode 'windows'")
    kind = task_for(kw["task"])
    if not kind.multi_step and kw["horizon"] != 1:
        raise ConfigError(f"horizon applies to task 'forecast' only, got horizon={kw['horizon']} for {kw['task']!r}")
    if kw["per_step"] and not kind.labelled:
        raise ConfigError(f"per_step applies to task 'classify' only (other tasks emit every step), got {kw['task']!r}")


def make_plan(
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
    recording_loss: str = "last",
) -> Plan:
    many_to_one = task_for(task).labelled and not per_step
    # A bidirectional model's backward half reads the future inside a window, so a loss on any reading
    # but the last (the one window mode emits on the device) would let it read its own targets.
    last_only = many_to_one or bidirectional
    sequences = prep.table.kind == "sequences" and not (bidirectional and not many_to_one)
    if sequences:
        window = max(len(s) for s in prep.train.series)  # a sequence is its own window
        lengths = sorted({len(s) for p in prep.parts() for s in p.series})
        if bidirectional and len(lengths) > 1:
            raise ConfigError(
                f"a bidirectional model runs on the device in window mode, over exactly one window length; "
                f"these sequences have lengths {lengths[0]}..{lengths[-1]}: pad or cut them to one length, "
                "or use a unidirectional model"
            )
    chunk = chunk or window
    stateful = mode == "stateful"
    if segment is None and stateful:
        lanes_len = prep.train.readings // max(batch_size, 1)
        segment = max(4 * chunk, -(-lanes_len // chunk) * chunk)
    if warmup is None:
        # outputs the model was never trained to give: before a window is full (windows-trained
        # many-to-one on streams, or any window-mode model)
        warmup = window - 1 if not sequences and not stateful and (many_to_one or bidirectional) else 0
    return Plan(
        task=task,
        stateful=stateful,
        many_to_one=many_to_one,
        last_only=last_only,
        sequences=sequences,
        spread=sequences and many_to_one and recording_loss == "every",
        window=window,
        stride=stride or max(1, window // 4),
        chunk=chunk,
        segment=segment,
        batch_size=batch_size,
        warmup=warmup,
        device_mode="window" if bidirectional else "stream",
    )


def check_enough(prep: Prepared, plan: Plan) -> None:
    for part in prep.parts():
        longest = max((len(s) for s in part.series), default=0)
        if plan.stateful or plan.sequences:
            if longest < 2:
                raise DataError(f"the {_split_name(part)} split has no recording of 2 or more readings")
            continue
        if count_windows(part, plan.window, plan.stride, plan.last_only, plan.sequences) == 0:
            need = plan.window + (prep.horizon if task_for(prep.task).forecasts else 0)
            shortest = min((len(s) for s in part.series), default=0)
            whole = ""
            if plan.many_to_one:  # labelled recordings need no window at all: they can train whole
                whole = (
                    ", or train each labelled recording whole (--train-on recordings, one label per --series-column)"
                )
            split = (
                ", or split whole series (--split-by sequence)" if prep.bounds.get("by", "").startswith("time") else ""
            )
            raise DataError(
                f"fewer rows than one window: the {_split_name(part)} split's recordings have {shortest} to "
                f"{longest} readings ({prep.table.readings} rows in all), a window needs {need}; lower window "
                f"(--window {max(2, shortest - (need - plan.window))} fits every one){whole}{split}, or give more data"
            )


def _split_name(part: Part) -> str:
    return {"train": "training", "val": "validation", "test": "test"}.get(part.name, part.name)
