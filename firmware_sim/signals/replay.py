"""Replay: the user's own recorded readings as a fleet's signal, with the file's labels as ground truth.

    --signal replay:readings.csv     the long format `edgernn train` reads (a directory: every *.csv in it)
    (no signal, bundle not matched)  the held-out test streams the exporter measured quality on, which
                                     travel in the bundle (manifest `replay`, file heldout.npz)

A file is cut into recordings by its device column (`device`, or `--param device=COL`), else it is one
recording. A simulated device replays the recording named like it (dev0003 -> the recording of device
dev0003), else the one at its position in the fleet modulo their number (round-robin); it starts at a
seeded offset into it (`--param offset=start`: at its first reading), so devices sharing a recording are
not in lock step, and loops when the run is longer. The fleet reads at the recordings' own rate (median
time step of the time column `t` / `time` / `timestamp` / `time_s`, or `--param time=COL`) unless `--rate` says
otherwise; a recording's timestamps are not replayed (the simulated clock and its faults stamp readings).

Ground truth, scored as for the built-in signals: classify from the label column (the column whose values
are the bundle's labels, or `--param label=COL`; readings with another value are not scored); anomaly from
`anomaly` (or `--param anomaly=COL`, 0/1); forecast from the bundle's target columns (the held-out readings:
their targets, as `edgernn inspect` scored them). Every recording is parsed once, into arrays (R recordings of
(n_r, F) float32 and (n_r,) truth); a device's chunk is one fancy-indexed slice, no per-reading Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.errors import ConfigError
from firmware_sim.signals.base import Signal, SignalChunk
from firmware_sim.tasks import sim_task_for

if TYPE_CHECKING:
    import pandas as pd

    from edge_runtime.bundle.manifest import Manifest

PREFIX = "replay:"
BUNDLE_SOURCE = "bundle"  # `replay:bundle` names the held-out readings that travel with the model
_PARAMS = ("device", "time", "label", "anomaly", "offset")
_TIME_COLUMNS = ("t", "time", "timestamp", "time_s")
_NO_LABEL = ""  # the replay's label for readings the bundle has no label for (mapped to -1: not scored)


@dataclass
class Recording:
    """One recorded stream: x (n, F) float32 in the bundle's feature order, truth (n,) int64; target (n, T)
    float64 the forecast bundle's targets at each reading (NaN: unknown), or None (nothing to score against)."""

    name: str
    x: np.ndarray
    truth: np.ndarray
    rate: float | None = None
    target: np.ndarray | None = None


@dataclass
class Replay:
    """Recordings of one source, ready for a fleet: the bundle's features as channels, truth as a signal's."""

    recordings: list[Recording]
    channels: tuple[str, ...]
    truth_kind: str  # "label" | "anomaly" | "target" (forecast) | "none" (nothing in the file to score against)
    labels: tuple[str, ...] = ()  # label replays: the bundle's labels then _NO_LABEL; truth indexes these
    rate: float | None = None  # readings per second of the recordings, when they say
    note: str = ""  # a line for the report (what was replayed, what was not scored)
    offset: str = "random"

    def assign(self, device: str, position: int) -> int:
        """The recording a simulated device replays: the one named like it, else its position in the fleet
        modulo the number of recordings (round-robin)."""
        names = {r.name: k for k, r in enumerate(self.recordings)}
        return names.get(device, position % len(self.recordings))

    def signal(self, rate: float, seed: int, index: int, recording: int) -> ReplaySignal:
        return ReplaySignal(self.recordings[recording], rate, seed, index, random_offset=self.offset == "random")


class ReplaySignal(Signal):
    """One device's replayed recording, from a seeded offset, looped."""

    kind = "replay"
    channels = ()
    truth_kind = "none"

    def __init__(self, rec: Recording, rate: float, seed: int, index: int, *, random_offset: bool = True) -> None:
        super().__init__(rate, seed, index)
        self.rec = rec
        self.length = len(rec.x)
        self.start = int(self.rng.integers(0, self.length)) if random_offset else 0

    def _generate(self, times: np.ndarray) -> SignalChunk:
        pos = (self.start + self.n + np.arange(len(times))) % self.length  # (n,) loops past the end
        truth = self.rec.truth[pos]
        target = self.rec.target[pos] if self.rec.target is not None else None
        return SignalChunk(x=self.rec.x[pos], truth=truth, stage=np.zeros(len(pos), np.int64), target=target)


def is_replay(signal: object) -> bool:
    return isinstance(signal, str) and signal.startswith(PREFIX)


def replay_path(signal: str, base: Path | None = None) -> Path | None:
    """The file or directory of `replay:PATH` (None for `replay:bundle`); ConfigError when it is not there."""
    raw = signal[len(PREFIX) :].strip()
    if not raw:
        raise ConfigError(f"signal {signal!r}: give a CSV file or directory after 'replay:' (or replay:bundle)")
    if raw == BUNDLE_SOURCE:
        return None
    p = Path(raw).expanduser()
    if base is not None and not p.is_absolute() and not p.exists() and (base / p).exists():
        p = base / p  # relative to the scenario file
    if not p.exists():
        raise ConfigError(f"signal {signal!r}: {str(p)!r} does not exist (a CSV file, or a directory of them)")
    return p


def load_replay(signal: str, manifest: Manifest, bundle: Path, params: dict[str, Any]) -> Replay:
    """The recordings `signal` names (`replay:PATH` or `replay:bundle`) for a bundle with `manifest`."""
    p = dict(params)
    unknown = sorted(set(p) - set(_PARAMS))
    if unknown:
        raise ConfigError(f"signal 'replay': unknown parameters {unknown}; allowed: {', '.join(_PARAMS)}")
    offset = str(p.get("offset", "random"))
    if offset not in ("random", "start"):
        raise ConfigError(f"signal 'replay': offset must be random or start, got {offset!r}")
    path = replay_path(signal)
    rep = from_bundle(manifest, bundle) if path is None else from_csv(path, manifest, p)
    rep.offset = offset
    return rep


def bundle_readings(manifest: Manifest, bundle: Path) -> Path | None:
    """The held-out readings file the bundle carries, or None (exported before bundles carried them)."""
    name = (manifest.replay or {}).get("file")
    if not name or not (Path(bundle) / name).is_file():
        return None
    return Path(bundle) / name


def from_bundle(manifest: Manifest, bundle: Path) -> Replay:
    path = bundle_readings(manifest, bundle)
    if path is None and manifest.pool > 1:
        raise ConfigError(
            f"bundle {str(bundle)!r} pools {manifest.pool} readings per model step, so its held-out data are pool "
            "means, not readings; replay the raw recordings: --signal replay:YOUR.csv"
        )
    if path is None:
        raise ConfigError(
            f"bundle {str(bundle)!r} carries no held-out readings to replay (manifest 'replay'); re-export it "
            "with this edgernn, or give --signal replay:YOUR.csv"
        )
    with np.load(path, allow_pickle=False) as z:
        x, y = z["x"], z["y"]  # (S, L, F), (S, L) labels or (S, L, O) targets
        anomaly = z.get("anomaly")  # (S, L) or absent
        lengths = z["lengths"] if "lengths" in z else np.full(len(x), x.shape[1])
    sim = sim_task_for(manifest.output.task)
    kind = sim.heldout_truth
    if kind == "anomaly" and (anomaly is None or not anomaly.size):
        kind = "none"
    recs = []
    for i, n in enumerate(lengths.tolist()):
        target = None
        if kind == "label":  # label index into the bundle's labels; -1 (not scored) -> the _NO_LABEL slot
            truth = np.where(y[i, :n] >= 0, y[i, :n], len(manifest.output.labels)).astype(np.int64)
        elif kind == "anomaly":
            assert anomaly is not None
            truth = anomaly[i, :n].astype(np.int64)
        else:
            truth = np.zeros(n, np.int64)
        if kind == "target":
            target = _heldout_targets(x[i, :n], y[i, :n], manifest)
        recs.append(Recording(f"heldout{i}", np.ascontiguousarray(x[i, :n], np.float32), truth, target=target))
    n_read = sum(len(r.x) for r in recs)
    note = (
        f"no built-in signal has the bundle's features: replaying its own held-out readings ({path.name}: "
        f"{_n(len(recs), 'stream')}, {n_read} readings)"
    ) + ("" if kind != "none" else "; " + sim.unscored())
    return Replay(
        recordings=recs,
        channels=tuple(manifest.input.features),
        truth_kind=kind,
        labels=(*manifest.output.labels, _NO_LABEL) if kind == "label" else (),
        rate=manifest.input.sample_rate,
        note=note,
    )


def _heldout_targets(x: np.ndarray, y: np.ndarray, manifest: Manifest) -> np.ndarray:
    """(n, T) each reading's targets from a held-out stream's x (n, F) and y (n, T * horizon), where y[p] holds
    the targets of readings p + 1 .. p + horizon: reading p's are y[p - 1, :T] (the values inspect scored);
    reading 0's come from x when the targets are input features, else they are unknown (NaN)."""
    targets, feats = list(manifest.output.targets), list(manifest.input.features)
    n_t = max(len(targets), 1)
    out = np.full((len(x), n_t), np.nan)
    out[1:] = y[:-1, :n_t]
    if targets and all(t in feats for t in targets):
        out[0] = x[0, [feats.index(t) for t in targets]]
    return out


def from_csv(path: Path, manifest: Manifest, params: dict[str, Any]) -> Replay:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"signal 'replay:{path}': the directory holds no *.csv files")
    features = list(manifest.input.features)
    task = manifest.output.task
    recs: list[Recording] = []
    kinds: set[str] = set()
    for f in files:
        df = _read(f)
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise ConfigError(
                f"replay file {str(f)!r} has no column for the bundle's features {missing}; "
                f"it has: {', '.join(map(str, df.columns))}"
            )
        truth_col, kind = _truth_column(df, f, features, manifest, params)
        kinds.add(kind)
        time = _column(df, f, params, "time", _TIME_COLUMNS)
        dev = _column(df, f, params, "device", ("device",)) or _text_column(df, {*features, time, truth_col})
        groups = [(f.stem, df)] if dev is None else [(str(k), g) for k, g in df.groupby(dev, sort=False)]
        for name, g in groups:
            if not len(g):
                continue
            if time is not None:
                g = g.sort_values(time, kind="stable")  # a recording plays in time order
            x = g[features].to_numpy(np.float32)  # (n, F)
            truth = _truth(g, truth_col, kind, manifest)
            target = g[list(manifest.output.targets)].to_numpy(np.float64) if kind == "target" else None  # (n, T)
            recs.append(Recording(name if dev is not None else f.stem, x, truth, _rate(g, time), target))
    if not recs:
        raise ConfigError(f"replay:{path}: no readings in {', '.join(str(f) for f in files)}")
    if len(kinds) > 1:
        raise ConfigError(f"replay files under {str(path)!r} disagree on ground truth: some have it, some not")
    kind = kinds.pop()
    rates = [r.rate for r in recs if r.rate]
    rate = float(np.median(rates)) if rates else None
    n_read = sum(len(r.x) for r in recs)
    note = f"replaying {_n(len(recs), 'recording')} ({n_read} readings) from {path}"
    if kind == "none":
        note += "; " + sim_task_for(task).unscored()
    if rates and max(rates) > 1.1 * min(rates):
        note += f"; their rates differ ({min(rates):g} to {max(rates):g}/s): every device reads at {rate:g}/s"
    return Replay(
        recordings=recs,
        channels=tuple(features),
        truth_kind=kind,
        labels=(*manifest.output.labels, _NO_LABEL) if kind == "label" else (),
        rate=rate,
        note=note,
    )


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read replay file {str(path)!r}: {exc}") from exc


def _column(df: pd.DataFrame, path: Path, params: dict[str, Any], key: str, defaults: tuple[str, ...]) -> str | None:
    if key in params:
        name = str(params[key])
        if name not in df.columns:
            raise ConfigError(
                f"replay file {str(path)!r} has no {key} column {name!r}; it has: {', '.join(df.columns)}"
            )
        return name
    return next((c for c in defaults if c in df.columns), None)


def _text_column(df: pd.DataFrame, taken: set[str | None]) -> str | None:
    """The device column when it has another name: the one text column left (the trainer's series column)."""
    import pandas as pd

    text = [c for c in df.columns if c not in taken and not pd.api.types.is_numeric_dtype(df[c])]
    return text[0] if len(text) == 1 else None


def _truth_column(
    df: pd.DataFrame, path: Path, features: list[str], manifest: Manifest, params: dict[str, Any]
) -> tuple[str | None, str]:
    """(column, truth kind): the label column of a classify bundle, the anomaly column of an anomaly one; a
    forecast bundle's truth is its target columns (kind "target" when the file has every one): the task's
    (`firmware_sim.tasks`), with the columns the user named in `params`."""

    def find(key: str, defaults: tuple[str, ...]) -> str | None:
        return _column(df, path, params, key, defaults)

    return sim_task_for(manifest.output.task).file_truth(manifest, df, features, find)


def _truth(g: pd.DataFrame, col: str | None, kind: str, manifest: Manifest) -> np.ndarray:
    if col is None:
        return np.zeros(len(g), np.int64)
    if kind == "anomaly":
        return (g[col].to_numpy(np.float64) > 0).astype(np.int64)
    labels = list(manifest.output.labels)
    by_name = {name: i for i, name in enumerate(labels)}
    index = g[col].astype(str).map(by_name).fillna(len(labels))  # a value the bundle has no label for: not scored
    return index.to_numpy(np.int64)


def _rate(g: pd.DataFrame, time: str | None) -> float | None:
    if time is None or len(g) < 2:
        return None
    import pandas as pd

    col = g[time]
    if pd.api.types.is_numeric_dtype(col):
        t = col.to_numpy(np.float64)
    else:
        t = pd.to_datetime(col, errors="coerce").astype("int64").to_numpy(np.float64) / 1e9
    step = np.diff(t)
    step = step[np.isfinite(step) & (step > 0)]
    return float(1.0 / np.median(step)) if len(step) else None
