"""Preparation: time-ordered split, scaler fit on the training split only, label encoding, per-reading targets.

Every later step works on `Part`s: one per split, holding each recording scaled and with its per-reading
training target, so windows, TBPTT chunks and the streaming evaluation all read the same arrays.
Per-reading targets (`y`, one row per reading t; each task's `targets` in `trainer.tasks` makes them):
    classify   (L,) int64 class of reading t (-1: unlabelled)
    generate   (L,) int64 the next token (-1 at the end)
    forecast   (L, horizon * n_targets) target j at t+1+k at column k * n_targets + j (NaN past the split end)
    anomaly    (L, n_targets) the next reading's targets (horizon 1)
With target_mode "delta" the training target of a forecast / anomaly is the change of each target from
reading t (`y_raw - target_t`, then scaled by statistics of those changes on the training split); `y_raw`
stays in raw units either way, which is what every report scores.
Targets never reach across a split boundary: the last readings of the training split have no target
rather than one taken from the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.errors import ConfigError, DataError
from trainer.checkpoint import Scaler
from trainer.sequences import recording_label
from trainer.table import Series, Table
from trainer.tasks import task_for

SCALERS = ("standard", "minmax")
SPLITS = ("train", "val", "test")
TARGET_MODES = ("level", "delta", "auto")
SPLIT_ORDERS = ("stratified", "file")


@dataclass
class Part:
    name: str  # train | val | test
    series: list[Series]  # raw readings of this split
    x: list[np.ndarray] = field(default_factory=list)  # scaled (L, C) float32, or (L,) int64 tokens
    y: list[np.ndarray] = field(default_factory=list)  # training target per reading (scaled for forecasts)
    y_raw: list[np.ndarray] = field(default_factory=list)  # the same in raw units (what heldout.npz stores)

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.series)


@dataclass
class Prepared:
    table: Table
    task: str
    train: Part
    val: Part
    test: Part
    scaler: Scaler
    target_scaler: Scaler | None
    labels: list[str]
    ranges: dict[str, list[float]]
    bounds: dict[str, Any]  # "by", then series -> split -> [first t, last t] (or split -> recordings)
    horizon: int = 1
    target_mode: str = "level"  # level | delta (see the module docstring)

    @property
    def output_size(self) -> int:
        return task_for(self.task).output_size(self)

    def parts(self) -> list[Part]:
        return [self.train, self.val, self.test]


def prepare(
    table: Table,
    *,
    task: str,
    horizon: int = 1,
    scaler: str = "standard",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_by: str = "time",
    target_mode: str = "level",
    split_order: str = "stratified",
    seed: int = 0,
    given: dict[str, Table] | None = None,
) -> Prepared:
    """`split_by`: "time" splits each recording at time fractions; "sequence" assigns whole recordings
    (sequences, or series / devices) to train, validation and test: for labelled recordings stratified by
    class and shuffled with `seed` (`split_order="stratified"`), else in their order (`"file"`).
    `given`: "val" and/or "test" tables that are those splits as they are (a benchmark's train/test pair);
    the splits not given are carved from `table`."""
    if scaler not in SCALERS:
        raise ConfigError(f"unsupported scaler {scaler!r}; supported: {', '.join(SCALERS)}")
    if split_order not in SPLIT_ORDERS:
        raise ConfigError(f"unsupported split order {split_order!r}; supported: {', '.join(SPLIT_ORDERS)}")
    given = given or {}
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if name.split("_")[0] not in given and not 0.0 < frac < 0.5:
            raise ConfigError(f"{name} must be in (0, 0.5), got {frac!r}")
    kind = task_for(task)
    if kind.forecasts and not kind.multi_step and horizon != 1:
        raise ConfigError(f"task {task!r} forecasts the next reading (horizon 1), got horizon={horizon}")
    if target_mode not in ("level", "delta"):
        raise ConfigError(f"unsupported target_mode {target_mode!r}; supported: {', '.join(TARGET_MODES)}")
    if target_mode == "delta" and kind.forecasts:
        missing = [t for t in table.targets if t not in table.features]
        if missing:
            raise ConfigError(
                f"target_mode 'delta' adds each target's latest reading back, so targets must be input features; "
                f"{missing} are not among {table.features}"
            )
    fractions = {"val": 0.0 if "val" in given else val_fraction, "test": 0.0 if "test" in given else test_fraction}
    train, val, test, bounds = _split(table, fractions, split_by, split_order if kind.labelled else "file", seed)
    for name, part in (("val", val), ("test", test)):
        if name in given:
            part.series = list(given[name].series)
            bounds[name] = f"given: {given[name].source or 'data'} ({len(part.series)} recordings)"
    labels = _encode_labels(table, train, val, test) if kind.labelled else []
    train_x = np.concatenate([s.x for s in train.series])
    if table.tokens:
        fitted = Scaler(kind="none", offset=[0.0], scale=[1.0])
        ranges = {"min": [0.0], "max": [float(len(table.vocabulary) - 1)]}
    else:
        fitted = fit_scaler(train_x, scaler)
        ranges = {"min": train_x.min(axis=0).astype(float).tolist(), "max": train_x.max(axis=0).astype(float).tolist()}
    target_scaler = None
    if kind.forecasts:
        if target_mode == "delta":
            changes = [_changes(s.target, horizon) for s in train.series if s.target is not None]
            target_scaler = fit_scaler(np.concatenate(changes), scaler)
        else:
            target_scaler = fit_scaler(np.concatenate([s.target for s in train.series if s.target is not None]), scaler)
    prep = Prepared(
        table=table,
        task=task,
        train=train,
        val=val,
        test=test,
        scaler=fitted,
        target_scaler=target_scaler,
        labels=labels,
        ranges=ranges,
        bounds=bounds,
        horizon=horizon,
        target_mode=target_mode if kind.forecasts else "level",
    )
    for part in prep.parts():
        for s in part.series:
            part.x.append(s.x if table.tokens else fitted.transform(s.x).astype(np.float32))
            y_raw, y = kind.targets(s, prep)
            part.y_raw.append(y_raw)
            part.y.append(y)
    return prep


def fit_scaler(x: np.ndarray, kind: str) -> Scaler:
    """Per-column statistics of x (N, C); constant columns get scale 1 so they stay finite."""
    x = x.astype(np.float64)
    if kind == "standard":
        offset, scale = x.mean(axis=0), x.std(axis=0)
    else:
        offset, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return Scaler(kind=kind, offset=offset.tolist(), scale=scale.tolist())


def _split(
    table: Table, fractions: dict[str, float], split_by: str, order: str, seed: int
) -> tuple[Part, Part, Part, dict[str, Any]]:
    parts = {name: Part(name, []) for name in SPLITS}
    bounds: dict[str, Any] = {}
    if split_by == "sequence":
        picks = _assign(table, fractions, order, seed)
        for name, idx in picks.items():
            parts[name].series = [table.series[i] for i in idx]
            bounds[name] = [table.series[i].name for i in idx]
        how = f"recordings, stratified by class (seed {seed})" if order == "stratified" else "recording order"
        return parts["train"], parts["val"], parts["test"], {"by": how, **bounds}
    for s in table.series:
        n = len(s)
        n_test, n_val = round(n * fractions["test"]), round(n * fractions["val"])
        cuts = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
        bounds[s.name] = {}
        for name, (a, b) in cuts.items():
            if b <= a:
                continue
            parts[name].series.append(_slice(s, a, b))
            bounds[s.name][name] = [float(s.t[a]), float(s.t[b - 1])]
    return parts["train"], parts["val"], parts["test"], {"by": "time, per series", **bounds}


def _changes(target: np.ndarray, horizon: int) -> np.ndarray:
    """(N, n_targets) every change target[t + 1 + k] - target[t], k < horizon, of one training series."""
    return np.concatenate([target[1 + k :] - target[: len(target) - 1 - k] for k in range(horizon)])


def _assign(table: Table, fractions: dict[str, float], order: str, seed: int) -> dict[str, list[int]]:
    """Recording indices per split. Stratified: each class's recordings are shuffled (seeded) and dealt to
    test, validation and train in proportion, at least one each, so every class is in every split; the
    recordings of a split keep their file order. Recordings with more than one label fall back to order."""
    wanted = [name for name in ("val", "test") if fractions[name] > 0]
    classes = [recording_label(s) for s in table.series]
    if order == "stratified" and all(c is not None for c in classes):
        rng = np.random.default_rng(seed)
        out: dict[str, list[int]] = {name: [] for name in SPLITS}
        counts = {c: classes.count(c) for c in dict.fromkeys(classes)}
        small = {c: n for c, n in counts.items() if n < len(wanted) + 1}
        if small:
            c, n = min(small.items(), key=lambda kv: kv[1])
            raise DataError(
                f"class {c!r} has {n} recording(s); a split by sequence puts every class in train"
                + "".join(f", {'validation' if w == 'val' else 'test'}" for w in wanted)
                + f", so each class needs at least {len(wanted) + 1}. Give the splits as files "
                "(--val-data / --test-data), or assign recordings in file order (--split-order file)"
            )
        for c in counts:
            idx = [i for i, k in enumerate(classes) if k == c]
            idx = [idx[j] for j in rng.permutation(len(idx))]
            total = len(idx)
            for name in ("test", "val"):
                if name in wanted:
                    k = min(max(1, round(total * fractions[name])), len(idx) - 1)
                    out[name] += idx[:k]
                    idx = idx[k:]
            out["train"] += idx
        return {name: sorted(v) for name, v in out.items()}
    n = len(table.series)
    n_test, n_val = round(n * fractions["test"]), round(n * fractions["val"])
    short = [name for name, k in (("val", n_val), ("test", n_test)) if name in wanted and k < 1]
    if n - n_test - n_val < 1 or short:
        raise DataError(
            f"{n} recordings cannot be split in order into train/validation/test at fractions "
            f"{1 - fractions['val'] - fractions['test']:.2f}/{fractions['val']}/{fractions['test']}; give more "
            "recordings, or the splits as files (--val-data / --test-data)"
            + (" or split by time (--split-by time)" if table.kind == "streams" else "")
        )
    a, b = n - n_val - n_test, n - n_test
    return {"train": list(range(a)), "val": list(range(a, b)), "test": list(range(b, n))}


def _slice(s: Series, a: int, b: int) -> Series:
    return Series(
        name=s.name,
        x=s.x[a:b],
        t=s.t[a:b],
        label=s.label[a:b] if s.label is not None else None,
        target=s.target[a:b] if s.target is not None else None,
        anomaly=s.anomaly[a:b] if s.anomaly is not None else None,
    )


def _encode_labels(table: Table, train: Part, val: Part, test: Part) -> list[str]:
    seen = {v for s in train.series if s.label is not None for v in s.label if v is not None}
    if not seen:
        raise DataError("the training split holds no labels")
    for part, what in ((val, "validation"), (test, "test")):
        for s in part.series:
            if s.label is None:
                continue
            extra = sorted({v for v in s.label if v is not None} - seen)
            if extra:
                where = f"series {s.name!r}" if table.kind == "streams" else f"sequence {s.name}"
                raise DataError(
                    f"class {extra[0]!r} appears only in the {what} split ({where}), never in training; "
                    f"classes in training: {', '.join(_natural(seen))}. Add training data for it or drop those rows"
                )
    return _natural(seen)


def _natural(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)
