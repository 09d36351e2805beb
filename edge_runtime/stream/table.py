"""Every stream's state in one table of arrays, indexed by slot; saved and restored atomically.

Holding the recurrent state of all streams as `(layers, capacity, H)` arrays makes `step_many` one
gather (`np.take`), one backend call and one scatter; when a call steps every stream in slot order
(a gateway ticking its whole fleet, or a device with one stream) the arrays go to the backend as they
are and the backend's new state replaces them: no copy at all.

The checkpoint file (`state-<device>.npz`) holds the table plus `saved_at` and the model identity;
it is written to a temp file, fsynced and renamed, so a power cut leaves the old or the new file, never half.
Stream ids are stored as one JSON text (UTF-8 bytes), not a fixed-width string array that would give every
id the width of the longest. The table holds at most `max_streams` streams: a new stream beyond that takes
the slot of the stream seen least recently (counted in `evicted`), so a gateway's memory stays bounded.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.stream.names import name_problem
from edgernn.errors import ConfigError, StateError

STATE_FORMAT = 1
DEFAULT_MAX_STREAMS = 10_000
# a checkpoint from before the publisher owned seq also holds "seq" (and "final"): read, and ignored
_PER_SLOT = (
    "last_t",
    "own_t",
    "steps",
    "last_good",
    "good_at",
    "prev_fc",
    "last_y",
    "win",
    "win_pos",
    "alarm_e",
    "alarm_on",
    "pool_sum",
    "pool_n",
)
# absent from the checkpoints of earlier versions: those streams keep `_alloc`'s fresh values (alarm off,
# clock not yet the readings' own)
_ADDED = ("own_t", "alarm_e", "alarm_on", "pool_sum", "pool_n")


class StreamTable:
    """Slots for streams: recurrent state, time of the last reading, readings since reset, and more."""

    def __init__(
        self,
        state_names: Sequence[str],
        state_shape: tuple[int, int],  # (layers * directions, H)
        n_features: int,
        n_targets: int,
        n_outputs: int,
        window: int = 0,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        if max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {max_streams}")
        self.max_streams = max_streams
        self.evicted = 0  # streams forgotten to make room, ever in this process
        self.restarts = 0  # streams restarted by a rule (a gap, a policy, a NaN state): `state_resets`
        self.state_names = tuple(state_names)
        self.state_shape = state_shape
        self.n_features, self.n_targets, self.n_outputs, self.window_len = n_features, n_targets, n_outputs, window
        self.ids: list[str] = []
        self.slot: dict[str, int] = {}
        # step_one keeps the last good raw values as the Python list it already has (cheaper than a row
        # write), stamped with a reading counter; step_many writes `last_good` rows and stamps `good_at`
        self.py_good: list[tuple[int, list[float]] | None] = []
        self._ids_cache: tuple[list[str] | None, np.ndarray, bool] = (None, np.empty(0, np.int64), False)
        self._alloc(0)

    def _alloc(self, cap: int) -> None:
        layers, h = self.state_shape
        self.cap = cap
        self.state: tuple[np.ndarray, ...] = tuple(np.zeros((layers, cap, h), np.float32) for _ in self.state_names)
        self.last_t = np.full(cap, np.nan)  # seconds; NaN: no reading yet
        self.own_t = np.zeros(cap, bool)  # last_t is the readings' own time (else this device's clock): clock.py
        self.steps = np.zeros(cap, np.int64)  # readings since the last reset (warm-up)
        self.last_good = np.full((cap, self.n_features), np.nan)  # raw, per feature, for `hold`
        self.good_at = np.full(cap, -1, np.int64)  # reading counter when last_good was written
        self.prev_fc = np.full((cap, self.n_targets), np.nan)  # anomaly: raw forecast of this reading's targets
        self.last_y = np.zeros((cap, self.n_outputs), np.float32)  # last scaled output (rollout)
        self.win = np.zeros((cap, 2 * self.window_len, self.n_features), np.float32)  # ring, written twice
        self.win_pos = np.zeros(cap, np.int64)
        self.alarm_e = np.full(cap, np.nan)  # anomaly alarm rule: the smoothed score (NaN: none yet)
        self.alarm_on = np.zeros(cap, bool)  # anomaly alarm rule: raised and not yet cleared
        self.pool_sum = np.zeros((cap, self.n_features))  # pooling: scaled readings since the last model step
        self.pool_n = np.zeros(cap, np.int64)  # pooling: how many readings pool_sum holds
        self.seen = np.zeros(cap, np.int64)  # reading counter when last stepped: who is idle longest

    def _grow(self, need: int) -> None:
        old = {name: getattr(self, name) for name in _PER_SLOT}
        old_state, n, old_seen = self.state, len(self.ids), self.seen
        self._alloc(max(need, 2 * self.cap, 1))
        for i, a in enumerate(old_state):
            self.state[i][:, :n] = a[:, :n]
        for name, a in old.items():
            getattr(self, name)[:n] = a[:n]
        self.seen[:n] = old_seen[:n]

    def compact(self) -> None:
        """Capacity down to the number of streams, so whole-table calls need no copy."""
        if self.cap != len(self.ids):
            n = len(self.ids)
            self.state = tuple(np.ascontiguousarray(a[:, :n]) for a in self.state)
            for name in (*_PER_SLOT, "seen"):
                setattr(self, name, np.ascontiguousarray(getattr(self, name)[:n]))
            self.cap = n

    def add(self, stream: str, now: int = 0) -> int:
        """A slot for a new stream (the caller checked its name); `now`: the reading counter, for eviction."""
        self._ids_cache = (None, self._ids_cache[1], False)  # a cached "all slots" no longer is
        if len(self.ids) >= self.max_streams:
            s = self._evict(now)
            self.ids[s] = stream
        else:
            s = len(self.ids)
            if s >= self.cap:
                self._grow(s + 1)
            self.ids.append(stream)
            self.py_good.append(None)
        self.slot[stream] = s
        self.seen[s] = now
        return s

    def _evict(self, now: int) -> int:
        """Empty the slot of the stream seen least recently, for a new one; never one stepped at `now`."""
        s = int(np.argmin(self.seen[: len(self.ids)]))
        if self.seen[s] >= now > 0:
            raise ConfigError(f"one call steps more than max_streams={self.max_streams} streams")
        del self.slot[self.ids[s]]
        self.reset(s)
        self.last_t[s] = np.nan
        self.own_t[s] = False
        self.last_good[s] = np.nan
        self.good_at[s] = -1
        self.py_good[s] = None
        self.evicted += 1
        return s

    def slots(self, stream_ids: list[str], now: int = 0) -> tuple[np.ndarray, bool]:
        """Slot index per stream (new streams added; -1 for a name `names.py` refuses), and whether they are
        exactly all slots in order. `now` (the reading counter) stamps them as seen."""
        cached_ids, idx, whole = self._ids_cache
        if cached_ids is not None and (stream_ids is cached_ids or stream_ids == cached_ids):
            self.seen[idx[idx >= 0] if not whole else slice(None)] = now
            return idx, whole
        if len(set(stream_ids)) != len(stream_ids):
            raise ConfigError("step_many: stream ids must be distinct within one call")
        get = self.slot.get
        found = [get(k) for k in stream_ids]
        if None in found:  # new streams: stamp the known ones first, so making room never evicts them
            self.seen[[s for s in found if s is not None]] = now
            found = [
                s if s is not None else (self.add(k, now) if name_problem(k) is None else -1)
                for k, s in zip(stream_ids, found, strict=True)
            ]
        idx = np.asarray(found, np.int64)
        self.seen[idx[idx >= 0]] = now
        n = len(self.ids)
        whole = len(idx) == n and bool((idx == np.arange(n)).all())
        if whole:
            self.compact()
        self._ids_cache = (list(stream_ids), idx, whole)
        return idx, whole

    def good(self, slot: int) -> list[float] | np.ndarray:
        """The stream's last good raw value per feature (NaN: none yet), whichever path wrote it last."""
        py = self.py_good[slot]
        if py is not None and py[0] > self.good_at[slot]:
            return py[1]
        return self.last_good[slot]

    def merge_good(self) -> None:
        for s, py in enumerate(self.py_good):
            if py is not None and py[0] > self.good_at[s]:
                self.last_good[s] = py[1]
                self.good_at[s] = py[0]

    def copy_slot(self, other: StreamTable, src: int, dst: int) -> None:
        """Slot `src` of another table (a checkpoint read back) into slot `dst` of this one."""
        for live, disk in zip(self.state, other.state, strict=True):
            live[:, dst] = disk[:, src]
        other.merge_good()
        for name in _PER_SLOT:
            getattr(self, name)[dst] = getattr(other, name)[src]
        self.good_at[dst] = -1
        self.py_good[dst] = None

    def reset(self, slot: int) -> None:
        for a in self.state:
            a[:, slot] = 0.0
        self.steps[slot] = 0
        self.prev_fc[slot] = np.nan
        self.last_y[slot] = 0.0
        self.win[slot] = 0.0
        self.win_pos[slot] = 0
        self.alarm_e[slot] = np.nan
        self.alarm_on[slot] = False
        self.pool_sum[slot] = 0.0
        self.pool_n[slot] = 0

    def restart(self, slot: int) -> None:
        """`reset` by a rule of the stepping paths (not by the caller), counted in `restarts`."""
        self.reset(slot)
        self.restarts += 1

    def reset_all(self) -> None:
        for s in range(len(self.ids)):
            self.reset(s)

    # --- checkpoints ---------------------------------------------------------------------------

    def save(self, path: Path, model_id: str) -> None:
        """Atomically: temp file in the same directory, fsync, rename, fsync the directory."""
        n = len(self.ids)
        self.merge_good()
        arrays: dict[str, Any] = {
            "format": np.asarray(STATE_FORMAT),
            "saved_at": np.asarray(time.time()),
            "model": np.asarray(model_id),
            "ids": np.frombuffer(json.dumps(self.ids).encode(), np.uint8),  # not "<U{longest}" per id
        }
        for name, a in zip(self.state_names, self.state, strict=True):
            arrays[f"state.{name}"] = a[:, :n]
        for name in _PER_SLOT:
            arrays[name] = getattr(self, name)[:n]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load(self, path: Path, model_id: str) -> float:
        """Fill the table from a checkpoint; returns its `saved_at`. StateError if it does not fit."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        # a truncated or garbled file: zipfile.BadZipFile, zlib.error, or a member that does not parse
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
            raise StateError(f"cannot read the state checkpoint {path}: {exc}") from exc
        if int(arrays.get("format", -1)) != STATE_FORMAT:
            raise StateError(f"{path}: state format {arrays.get('format')!r}, this edgernn reads {STATE_FORMAT}")
        if str(arrays.get("model")) != model_id:
            raise StateError(f"{path} was saved by another model ({str(arrays.get('model'))[:12]}...)")
        ids = _ids(arrays["ids"])
        n = len(ids)
        layers, h = self.state_shape
        want: dict[str, tuple[int, ...]] = {f"state.{name}": (layers, n, h) for name in self.state_names}
        want |= {name: (n, *getattr(self, name).shape[1:]) for name in _PER_SLOT}  # as `_alloc` makes them
        for key, shape in want.items():
            if key in _ADDED and key not in arrays:
                continue
            if key not in arrays or arrays[key].shape != shape:
                got = arrays[key].shape if key in arrays else "nothing"
                raise StateError(f"{path}: {key} has shape {got}, this bundle needs {shape}")
        self.ids, self.slot = [], {}
        self._ids_cache = (None, np.empty(0, np.int64), False)
        self._alloc(n)
        self.ids = ids
        self.slot = {k: i for i, k in enumerate(ids)}
        for i, name in enumerate(self.state_names):
            self.state[i][...] = arrays[f"state.{name}"]
        for name in _PER_SLOT:
            if name in arrays:
                getattr(self, name)[...] = arrays[name]
        self.good_at[:] = -1  # reading counters restart with the process
        self.py_good = [None] * n
        return float(arrays["saved_at"])


def _ids(stored: np.ndarray) -> list[str]:
    """Stream ids from a checkpoint: JSON text as bytes, or (older checkpoints) an array of strings."""
    if stored.dtype == np.uint8:
        try:
            ids = json.loads(stored.tobytes().decode())
        except ValueError as exc:
            raise StateError(f"the stream ids in the checkpoint are not readable: {exc}") from exc
        if not isinstance(ids, list) or not all(isinstance(k, str) for k in ids):
            raise StateError("the stream ids in the checkpoint are not a list of names")
        return ids
    return [str(s) for s in stored]
