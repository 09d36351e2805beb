"""Loading: a CSV / DataFrame in long format, arrays of sequences, or tokens -> a checked `Table`.

Everything the user can get wrong about the data is caught here, before anything is trained or written,
with a `DataError` / `ConfigError` that names the bad value and what is allowed.

Two kinds of data come out:
    streams    long contiguous recordings (one per series / device), split by time inside each series
    sequences  independent recordings (arrays (N, T, C), a list of (T_i, C), token lists), split in order
Labels are kept raw (strings) per reading here; `None` means "no label at this reading" (a many-to-one
sequence carries its label on its last reading only). Encoding happens after the split (`trainer.prep`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgernn.config import TASKS
from edgernn.errors import ConfigError, DataError

DataLike = Any  # pd.DataFrame | str | Path | tuple[x, y] | Tokens


@dataclass
class Tokens:
    """Token input (the seed's character-level RNN and sentiment LSTM).

    `Tokens.from_text("...")` is one stream of characters (for `task="generate"`);
    `Tokens(sequences=[["a", "fine", "film"], ...], labels=["pos", ...])` are labelled token sequences.
    """

    sequences: list[list[str]]
    labels: Sequence[Any] | None = None
    stream: bool = False  # one long text: split by time rather than by sequence

    @classmethod
    def from_text(cls, text: str, level: str = "char") -> Tokens:
        if level == "char":
            toks = list(text)
        elif level == "word":
            toks = text.split()
        else:
            raise ConfigError(f"unsupported token level {level!r}; supported: char, word")
        return cls(sequences=[toks], stream=True)


@dataclass
class Series:
    """One recording. x (L, C) float32 raw features, or (L,) int64 tokens."""

    name: str
    x: np.ndarray
    t: np.ndarray  # (L,) float64 seconds, or the row index when there is no time column
    label: np.ndarray | None = None  # (L,) object: raw label per reading, None where unlabelled
    target: np.ndarray | None = None  # (L, n_targets) float32 raw target readings (forecast / anomaly)
    anomaly: np.ndarray | None = None  # (L,) int8 ground truth, when given

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Table:
    kind: str  # "streams" | "sequences"
    series: list[Series]
    features: list[str]
    targets: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)  # token models
    sample_rate: float | None = None
    sha256: str = ""
    dropped_rows: int = 0  # rows dropped for NaN/inf when drop_nan=True
    source: str = ""

    @property
    def tokens(self) -> bool:
        return bool(self.vocabulary)

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.series)


def load(
    data: DataLike,
    *,
    task: str,
    target: str | list[str] | None,
    features: list[str] | None,
    time_column: str | None,
    series_column: str | None,
    anomaly_column: str | None = None,
    drop_nan: bool = False,
    per_step: bool = False,
) -> Table:
    if task not in TASKS:
        raise ConfigError(f"unsupported task {task!r}; supported: {', '.join(TASKS)}")
    if isinstance(data, Tokens):
        return _from_tokens(data, task)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise DataError(f"data file {str(path)!r} does not exist")
        if task == "generate" and path.suffix.lower() in (".txt", ".text", ".md"):
            table = _from_tokens(Tokens.from_text(path.read_text(encoding="utf-8")), task)
            table.source = str(path)
            return table
        try:
            df = pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {str(path)!r} as CSV: {exc}") from exc
        table = _from_frame(
            df,
            task,
            target,
            features,
            time_column,
            series_column,
            anomaly_column,
            drop_nan,
            sha=_sha_bytes(path.read_bytes()),
        )
        table.source = str(path)
        return table
    if isinstance(data, pd.DataFrame):
        return _from_frame(data, task, target, features, time_column, series_column, anomaly_column, drop_nan)
    if isinstance(data, tuple) and len(data) == 2:
        return _from_arrays(data[0], data[1], task, target, features, drop_nan, per_step)
    raise DataError(
        f"unsupported data of type {type(data).__name__}; allowed: a CSV path, a pandas DataFrame, "
        "a tuple (x, y) of arrays (N, T, C) or a list of (T_i, C) arrays, or trainer.data.Tokens"
    )


# --------------------------------------------------------------------------------------------- frames


def _from_frame(
    df: pd.DataFrame,
    task: str,
    target: str | list[str] | None,
    features: list[str] | None,
    time_column: str | None,
    series_column: str | None,
    anomaly_column: str | None,
    drop_nan: bool,
    sha: str | None = None,
) -> Table:
    if task == "generate":
        raise ConfigError("task 'generate' needs token input (trainer.data.Tokens or a .txt file), not a table")
    columns = [str(c) for c in df.columns]
    df = df.set_axis(columns, axis=1)

    def need(name: str, what: str) -> str:
        if name not in columns:
            raise DataError(f"{what} {name!r} is not a column of the data; columns: {', '.join(columns)}")
        return name

    if time_column is not None:
        need(time_column, "time column")
    if series_column is not None:
        need(series_column, "series column")
    if anomaly_column is not None:
        need(anomaly_column, "anomaly column")
    targets = _as_list(target)
    if task == "classify":
        if len(targets) != 1:
            raise ConfigError(f"task 'classify' needs exactly one label column as target, got {targets or None}")
        need(targets[0], "target (label column)")
    else:
        for name in targets:
            need(name, "target")
    meta = {c for c in (time_column, series_column, anomaly_column) if c is not None}
    if task == "classify":
        meta.add(targets[0])
    chosen = features is not None
    if features is None:
        features = [c for c in columns if c not in meta]
        if not features:
            raise DataError(f"no feature columns left; columns: {', '.join(columns)}")
    else:
        features = [str(f) for f in features]
        for name in features:
            need(name, "feature")
        clash = sorted(set(features) & meta)
        if clash:
            raise ConfigError(f"{clash} cannot be both a feature and the time/series/label/anomaly column")
    if len(set(features)) != len(features):
        raise ConfigError(f"duplicate feature names in {features}")
    if task in ("forecast", "anomaly") and not targets:
        targets = list(features)
    if task == "anomaly":
        missing = [t for t in targets if t not in features]
        if missing:
            raise ConfigError(
                f"anomaly targets {missing} must also be input features (the score compares each reading "
                f"with its forecast); features: {', '.join(features)}"
            )

    numeric = list(dict.fromkeys(features + (targets if task != "classify" else [])))
    hint = "" if chosen else ", or name an id column with series_column / --series-column"
    values = {name: _numeric_column(df[name], name, hint) for name in numeric}
    t = _time_values(df[time_column], time_column) if time_column is not None else np.arange(len(df), dtype=np.float64)
    bad = np.zeros(len(df), bool)
    problems: list[str] = []
    for name, v in values.items():
        nonfinite = ~np.isfinite(v)
        if nonfinite.any():
            problems.append(
                f"column {name!r} has {int(nonfinite.sum())} NaN/inf values (first at row {_first(nonfinite)})"
            )
            bad |= nonfinite
    if not np.isfinite(t).all():
        nonfinite = ~np.isfinite(t)
        problems.append(
            f"time column {time_column!r} has {int(nonfinite.sum())} missing values (first at row {_first(nonfinite)})"
        )
        bad |= nonfinite
    labels: np.ndarray | None = None
    if task == "classify":
        raw = df[targets[0]]
        missing_label = raw.isna().to_numpy()
        if missing_label.any():
            problems.append(
                f"label column {targets[0]!r} has {int(missing_label.sum())} empty values "
                f"(first at row {_first(missing_label)})"
            )
            bad |= missing_label
        labels = np.array([_label_str(v) for v in raw.to_numpy()], dtype=object)
    anomaly: np.ndarray | None = None
    if anomaly_column is not None:
        a = _numeric_column(df[anomaly_column], anomaly_column)
        if not np.isin(a[np.isfinite(a)], (0, 1)).all():
            raise DataError(f"anomaly column {anomaly_column!r} must hold 0 (normal) or 1 (anomalous)")
        nonfinite = ~np.isfinite(a)
        if nonfinite.any():
            problems.append(f"anomaly column {anomaly_column!r} has {int(nonfinite.sum())} empty values")
            bad |= nonfinite
        anomaly = np.nan_to_num(a).astype(np.int8)
    if problems and not drop_nan:
        raise DataError("; ".join(problems) + ". Clean the data, or pass drop_nan=True (--drop-nan) to drop those rows")
    keep = ~bad
    dropped = int(bad.sum())
    if keep.sum() == 0:
        raise DataError("no rows left after dropping rows with NaN/inf")

    groups: list[tuple[str, np.ndarray]]
    if series_column is not None:
        ids = df[series_column].astype(str).to_numpy()
        order = list(dict.fromkeys(ids[keep]))
        groups = [(sid, np.flatnonzero(keep & (ids == sid))) for sid in order]
    else:
        groups = [("0", np.flatnonzero(keep))]
    feat = np.stack([values[n] for n in features], axis=1).astype(np.float32)  # (rows, C)
    targ = np.stack([values[n] for n in targets], axis=1).astype(np.float32) if task != "classify" else None
    series: list[Series] = []
    for sid, rows in groups:
        rows = rows[np.argsort(t[rows], kind="stable")]  # time order within the series
        series.append(
            Series(
                name=sid,
                x=feat[rows],
                t=t[rows],
                label=labels[rows] if labels is not None else None,
                target=targ[rows] if targ is not None else None,
                anomaly=anomaly[rows] if anomaly is not None else None,
            )
        )
    if sha is None:
        sha = _sha_bytes(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes() + ",".join(columns).encode())
    return Table(
        kind="streams",
        series=series,
        features=features,
        targets=targets if task != "classify" else [],
        sample_rate=_sample_rate(series) if time_column is not None else None,
        sha256=sha,
        dropped_rows=dropped,
        source="DataFrame",
    )


def _numeric_column(col: pd.Series, name: str, hint: str = "") -> np.ndarray:
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    conv = pd.to_numeric(col, errors="coerce")
    bad = conv.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise DataError(
            f"feature {name!r} is not numeric: {col.iloc[row]!r} at row {row}; features must be numbers "
            f"(choose numeric columns with features=[...] / --features{hint})"
        )
    return conv.to_numpy(dtype=np.float64, na_value=np.nan)


def _time_values(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        ts = pd.to_datetime(col, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise DataError(f"time column {name!r} holds neither numbers (seconds) nor timestamps: {exc}") from exc
    secs = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return secs.to_numpy(dtype=np.float64, na_value=np.nan)


def _sample_rate(series: list[Series]) -> float | None:
    diffs = np.concatenate([np.diff(s.t) for s in series if len(s) > 1] or [np.zeros(0)])
    diffs = diffs[diffs > 0]
    return float(1.0 / np.median(diffs)) if len(diffs) else None


# --------------------------------------------------------------------------------------------- arrays


def _from_arrays(
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
        table = _from_tokens(toks, task, vocabulary=[str(i) for i in range(vocab_size)])
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
    targets = _as_list(target)
    if task in ("forecast", "anomaly"):
        targets = targets or list(names)
        for name in targets:
            if name not in names:
                raise DataError(f"target {name!r} is not a feature; features: {', '.join(names)}")
    elif task == "classify" and y is None:
        raise DataError("task 'classify' with arrays needs labels: fit((x, y), ...)")
    series: list[Series] = []
    dropped = 0
    for i, s in enumerate(seqs):
        xs = s.astype(np.float32)
        finite = np.isfinite(xs).all(axis=1)
        if not finite.all():
            finite = np.asarray(finite, dtype=bool)
            if not drop_nan:
                raise DataError(
                    f"sequence {i} has {int((~finite).sum())} readings with NaN/inf (first at step {_first(~finite)}). "
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
        sha256=_sha_arrays(seqs, y),
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
    if task != "classify" or y is None:
        return None
    if len(y) != len(seqs):
        raise DataError(f"{len(y)} labels for {len(seqs)} sequences; give one label (or one per step) per sequence")
    out = []
    for i, (lab, s) in enumerate(zip(y, seqs, strict=True)):
        arr = np.atleast_1d(np.asarray(lab, dtype=object))
        if arr.shape == (len(s),) and (per_step or len(s) == 1):
            out.append(np.array([_label_str(v) for v in arr], dtype=object))
        elif arr.size == 1:
            if per_step:
                raise DataError(f"per_step=True needs a label for every step; sequence {i} has one label")
            per = np.full(len(s), None, dtype=object)
            per[-1] = _label_str(arr.reshape(-1)[0])  # many-to-one: the label belongs to the last reading
            out.append(per)
        else:
            raise DataError(f"labels of sequence {i} have shape {arr.shape}; expected one label or ({len(s)},)")
    return out


# --------------------------------------------------------------------------------------------- tokens


def _from_tokens(data: Tokens, task: str, vocabulary: list[str] | None = None) -> Table:
    if task not in ("generate", "classify"):
        raise ConfigError(f"token input supports tasks generate and classify, not {task!r}")
    if task == "classify" and data.labels is None:
        raise DataError("token classification needs labels: Tokens(sequences=..., labels=...)")
    if task == "generate" and data.labels is not None:
        raise ConfigError("task 'generate' predicts the next token; labels are not used")
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
                label[-1] = _label_str(data.labels[i])
        series.append(Series(name=str(i), x=ids, t=np.arange(len(ids), dtype=np.float64), label=label))
    series = [s for s in series if len(s)]
    sha = _sha_bytes("\x1f".join("\x1e".join(s) for s in seqs).encode() + repr(data.labels).encode())
    return Table(
        kind="streams" if data.stream else "sequences",
        series=series,
        features=["token"],
        vocabulary=vocab,
        sha256=sha,
        source="tokens",
    )


# --------------------------------------------------------------------------------------------- helpers


def _as_list(v: str | list[str] | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else [str(x) for x in v]


def _label_str(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))  # 1.0 and 1 name the same class
    return str(v.item() if isinstance(v, np.generic) else v)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _sha_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _sha_arrays(seqs: list[np.ndarray], y: Any) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(np.ascontiguousarray(s).tobytes())
        h.update(str(s.shape).encode())
    if y is not None:
        h.update(repr([np.asarray(v).tolist() for v in y]).encode())
    return h.hexdigest()
