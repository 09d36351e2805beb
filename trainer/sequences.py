"""Independent recordings: arrays (N, T, C) or a list of unequal-length (T_i, C), and token input.

Both become a `trainer.data.Table` of kind "sequences" (or "streams" for one long text). A sequence with
one label carries it on its last reading only; the other readings are unlabelled (many-to-one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgernn.errors import ConfigError, DataError
from trainer.table import Series, Table, Tokens, as_list, first_true, label_str, sha_arrays, sha_bytes
from trainer.tasks import TASKS, task_for

# --------------------------------------------------------------------------------------------- arrays


def from_arrays(
    x: Any,
    y: Any,
    task: str,
    target: str | list[str] | None,
    features: list[str] | None,
    drop_nan: bool,
    per_step: bool,
) -> Table:
    seqs = _as_sequences(x)
    tokens = all(np.issubdtype(s.dtype, np.integer) for s in seqs) and all(s.ndim == 1 for s in seqs)
    if tokens:
        vocab_size = int(max(int(s.max()) for s in seqs if len(s)) + 1)
        if any(len(s) and int(s.min()) < 0 for s in seqs):
            raise DataError("token ids must be >= 0")
        toks = Tokens(sequences=[[str(int(v)) for v in s] for s in seqs], labels=None if y is None else list(y))
        table = from_tokens(toks, task, vocabulary=[str(i) for i in range(vocab_size)])
        if per_step and y is not None:
            raise ConfigError("per-step labels for token arrays are not supported; give one label per sequence")
        return table
    for i, s in enumerate(seqs):
        if s.ndim != 2:
            raise DataError(f"sequence {i} has shape {s.shape}; expected (T, C) features (or (T,) integer tokens)")
    channels = {s.shape[1] for s in seqs}
    if len(channels) != 1:
        raise DataError(f"sequences have different feature counts {sorted(channels)}; all need the same C")
    c = channels.pop()
    names = [str(f) for f in features] if features is not None else [f"x{i}" for i in range(c)]
    if len(names) != c:
        raise ConfigError(f"{len(names)} feature names given for {c} features per reading")
    labels = _array_labels(y, seqs, task, per_step)
    targets = as_list(target)
    kind = task_for(task)
    if kind.forecasts:
        targets = targets or list(names)
        for name in targets:
            if name not in names:
                raise DataError(f"target {name!r} is not a feature; features: {', '.join(names)}")
    elif kind.labelled and y is None:
        raise DataError(f"task {task!r} with arrays needs labels: fit((x, y), ...)")
    series: list[Series] = []
    dropped = 0
    for i, s in enumerate(seqs):
        xs = s.astype(np.float32)
        finite = np.isfinite(xs).all(axis=1)
        if not finite.all():
            finite = np.asarray(finite, dtype=bool)
            if not drop_nan:
                raise DataError(
                    f"sequence {i} has {int((~finite).sum())} readings with NaN/inf "
                    f"(first at step {first_true(~finite)}). "
                    "Clean the data, or pass drop_nan=True (--drop-nan) to drop those readings"
                )
            dropped += int((~finite).sum())
        lab = labels[i] if labels is not None else None
        if lab is not None and not finite.all():
            one = lab[-1] if all(v is None for v in lab[:-1]) else None  # a many-to-one label
            lab = lab[finite]
            if one is not None and len(lab):
                lab[:] = None
                lab[-1] = one  # stays on the last reading that is kept
        xs = xs[finite]
        idx = [names.index(n) for n in targets]
        series.append(
            Series(
                name=str(i),
                x=xs,
                t=np.arange(len(xs), dtype=np.float64),
                label=lab,
                target=xs[:, idx] if idx else None,
            )
        )
    return Table(
        kind="sequences",
        series=series,
        features=names,
        targets=targets,
        sha256=sha_arrays(seqs, y),
        dropped_rows=dropped,
        source="arrays",
    )


def _as_sequences(x: Any) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) or hasattr(x, "numpy"):
        arr = np.asarray(x)
        if arr.ndim not in (2, 3):
            raise DataError(f"x has shape {arr.shape}; expected (N, T, C) features or (N, T) tokens")
        if arr.dtype.kind not in "iufb":
            raise DataError(f"x has dtype {arr.dtype}; features must be numbers")
        return list(arr)
    if isinstance(x, (list, tuple)) and x:
        out = []
        for i, s in enumerate(x):
            a = np.asarray(s)
            if a.dtype.kind not in "iufb":
                raise DataError(f"sequence {i} has dtype {a.dtype}; features must be numbers")
            out.append(a)
        return out
    raise DataError(f"x must be an array (N, T, C) or a non-empty list of (T_i, C) arrays, got {type(x).__name__}")


def _array_labels(y: Any, seqs: list[np.ndarray], task: str, per_step: bool) -> list[np.ndarray] | None:
    if not task_for(task).labelled or y is None:
        return None
    if len(y) != len(seqs):
        raise DataError(f"{len(y)} labels for {len(seqs)} sequences; give one label (or one per step) per sequence")
    out = []
    for i, (lab, s) in enumerate(zip(y, seqs, strict=True)):
        arr = np.atleast_1d(np.asarray(lab, dtype=object))
        if arr.shape == (len(s),) and (per_step or len(s) == 1):
            out.append(np.array([label_str(v) for v in arr], dtype=object))
        elif arr.size == 1:
            if per_step:
                raise DataError(f"per_step=True needs a label for every step; sequence {i} has one label")
            per = np.full(len(s), None, dtype=object)
            per[-1] = label_str(arr.reshape(-1)[0])  # many-to-one: the label belongs to the last reading
            out.append(per)
        else:
            raise DataError(f"labels of sequence {i} have shape {arr.shape}; expected one label or ({len(s)},)")
    return out


# --------------------------------------------------------------------------------------------- tokens


def from_tokens(data: Tokens, task: str, vocabulary: list[str] | None = None) -> Table:
    kind = task_for(task)
    if not kind.accepts_tokens:
        takes = " and ".join(sorted((n for n, t in TASKS.items() if t.accepts_tokens), key=_token_first))
        raise ConfigError(f"token input supports tasks {takes}, not {task!r}")
    if kind.labelled and data.labels is None:
        raise DataError("token classification needs labels: Tokens(sequences=..., labels=...)")
    if not kind.labelled and data.labels is not None:
        raise ConfigError(f"task {task!r} predicts the next token; labels are not used")
    seqs = [list(map(str, s)) for s in data.sequences]
    if not seqs or not any(seqs):
        raise DataError("no tokens in the data")
    vocab = vocabulary or sorted({tok for s in seqs for tok in s})
    index = {tok: i for i, tok in enumerate(vocab)}
    series = []
    for i, s in enumerate(seqs):
        ids = np.array([index[tok] for tok in s], dtype=np.int64)
        label = None
        if data.labels is not None:
            if len(data.labels) != len(seqs):
                raise DataError(f"{len(data.labels)} labels for {len(seqs)} token sequences")
            label = np.full(len(ids), None, dtype=object)
            if len(ids):
                label[-1] = label_str(data.labels[i])
        series.append(Series(name=str(i), x=ids, t=np.arange(len(ids), dtype=np.float64), label=label))
    series = [s for s in series if len(s)]
    sha = sha_bytes("\x1f".join("\x1e".join(s) for s in seqs).encode() + repr(data.labels).encode())
    return Table(
        kind="streams" if data.stream else "sequences",
        series=series,
        features=["token"],
        vocabulary=vocab,
        sha256=sha,
        source="tokens",
    )


def _token_first(name: str) -> tuple[bool, str]:
    """Tasks that read only tokens are named first."""
    return (not TASKS[name].tokens_only, name)


# --------------------------------------------------------------------------------------------- recordings


def recording_label(s: Series) -> str | None:
    """The one label of a recording (every labelled reading agrees), else None."""
    if s.label is None:
        return None
    seen = {v for v in s.label if v is not None}
    return seen.pop() if len(seen) == 1 else None


def as_recordings(table: Table, *, required: bool, what: str = "series") -> Table | None:
    """Long-format series with one label each -> independent many-to-one recordings (kind "sequences").

    Each series becomes one recording whose label sits on its last reading only, so it is trained whole
    from a zero state and scored where the device judges it: at the end of a recording streamed from a
    reset. Returns None when the data are not labelled recordings (a series whose label changes), unless
    `required`, which names the first such series instead.
    """
    if table.kind != "streams" or not table.series:
        return table if table.kind == "sequences" else None
    for s in table.series:
        if recording_label(s) is None:
            if not required:
                return None
            assert s.label is not None
            labels = sorted({str(v) for v in s.label if v is not None})
            raise DataError(
                f"{what} {s.name!r} holds {len(labels)} labels ({', '.join(labels[:5])}); whole-recording "
                "training needs one label per series (--series-column): use --train-on windows to cut "
                "labelled streams into windows"
            )
    series = []
    for s in table.series:
        one = np.full(len(s), None, dtype=object)
        one[-1] = recording_label(s)  # many-to-one: the label belongs to the last reading
        series.append(Series(name=s.name, x=s.x, t=s.t, label=one, target=s.target, anomaly=s.anomaly))
    return Table(
        kind="sequences",
        series=series,
        features=table.features,
        targets=table.targets,
        vocabulary=table.vocabulary,
        sample_rate=table.sample_rate,
        sha256=table.sha256,
        dropped_rows=table.dropped_rows,
        source=table.source,
    )
