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

from pathlib import Path

import numpy as np
import pandas as pd

from edgernn.errors import ConfigError, DataError
from trainer.table import DataLike, Series, Table, Tokens, as_list, first_true, label_str, sha_bytes
from trainer.tasks import task_for


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
    from trainer.sequences import from_arrays, from_tokens  # it builds on the classes of this module

    kind = task_for(task)  # ConfigError naming the supported tasks
    if isinstance(data, Tokens):
        return from_tokens(data, task)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise DataError(f"data file {str(path)!r} does not exist")
        if kind.tokens_only and path.suffix.lower() in (".txt", ".text", ".md"):
            table = from_tokens(Tokens.from_text(path.read_text(encoding="utf-8")), task)
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
            sha=sha_bytes(path.read_bytes()),
        )
        table.source = str(path)
        return table
    if isinstance(data, pd.DataFrame):
        return _from_frame(data, task, target, features, time_column, series_column, anomaly_column, drop_nan)
    if isinstance(data, tuple) and len(data) == 2:
        return from_arrays(data[0], data[1], task, target, features, drop_nan, per_step)
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
    kind = task_for(task)
    if kind.tokens_only:
        raise ConfigError(f"task {task!r} needs token input (trainer.data.Tokens or a .txt file), not a table")
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
    targets = as_list(target)
    if kind.labelled:
        if len(targets) != 1:
            raise ConfigError(f"task {task!r} needs exactly one label column as target, got {targets or None}")
        need(targets[0], "target (label column)")
    else:
        for name in targets:
            need(name, "target")
    meta = {c for c in (time_column, series_column, anomaly_column) if c is not None}
    if kind.labelled:
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
    if kind.forecasts and not targets:
        targets = list(features)
    if kind.targets_in_inputs:
        missing = [t for t in targets if t not in features]
        if missing:
            raise ConfigError(
                f"{task} targets {missing} must also be input features (the score compares each reading "
                f"with its forecast); features: {', '.join(features)}"
            )

    numeric = list(dict.fromkeys(features + (targets if not kind.labelled else [])))
    hint = "" if chosen else ", or name an id column with series_column / --series-column"
    values = {name: _numeric_column(df[name], name, hint) for name in numeric}
    t = _time_values(df[time_column], time_column) if time_column is not None else np.arange(len(df), dtype=np.float64)
    bad = np.zeros(len(df), bool)
    problems: list[str] = []
    for name, v in values.items():
        nonfinite = ~np.isfinite(v)
        if nonfinite.any():
            problems.append(
                f"column {name!r} has {int(nonfinite.sum())} NaN/inf values (first at row {first_true(nonfinite)})"
            )
            bad |= nonfinite
    if not np.isfinite(t).all():
        nonfinite = ~np.isfinite(t)
        problems.append(
            f"time column {time_column!r} has {int(nonfinite.sum())} missing values "
            f"(first at row {first_true(nonfinite)})"
        )
        bad |= nonfinite
    labels: np.ndarray | None = None
    if kind.labelled:
        raw = df[targets[0]]
        missing_label = raw.isna().to_numpy()
        if missing_label.any():
            problems.append(
                f"label column {targets[0]!r} has {int(missing_label.sum())} empty values "
                f"(first at row {first_true(missing_label)})"
            )
            bad |= missing_label
        labels = np.array([label_str(v) for v in raw.to_numpy()], dtype=object)
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
        kept = np.flatnonzero(keep)
        # one sort, not one pass over every row per series (a file of 1000 recordings took seconds)
        names, first, which = np.unique(ids[kept], return_index=True, return_inverse=True)
        members = np.split(kept[np.argsort(which, kind="stable")], np.cumsum(np.bincount(which))[:-1])
        groups = [(str(names[u]), members[u]) for u in np.argsort(first)]  # in order of first appearance
    else:
        groups = [("0", np.flatnonzero(keep))]
    feat = np.stack([values[n] for n in features], axis=1).astype(np.float32)  # (rows, C)
    targ = np.stack([values[n] for n in targets], axis=1).astype(np.float32) if not kind.labelled else None
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
        sha = sha_bytes(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes() + ",".join(columns).encode())
    return Table(
        kind="streams",
        series=series,
        features=features,
        targets=targets if not kind.labelled else [],
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
        row = first_true(bad)
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
