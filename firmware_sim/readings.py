"""A fleet's readings: one seeded signal per device (or its recording, replayed), read a chunk ahead.

Signals cost per call, so each device's signal is read `chunk` readings at a time into (D, K, F) buffers,
columns in the bundle's feature order, with the signal's ground truth (D, K) alongside, and for a forecast
bundle the true values of its targets (D, K, T): the signal's clean channels, or a replayed file's columns.

When they are read matters in real time. Reading every device's chunk at the tick that needs it cost
0.45-0.5 s of CPU per 500 imu devices in one tick (a 60 s chunk; 1.4-1.6 s of wall time on a loaded host),
so each worker's first tick was 14-16 ticks late and the clock caught up over the next ones: most of the
late ticks of a 1,000-device real-time run, in old and new code alike. So the first chunk is read before
the clock starts (`prefetch`), and the next one a few devices per tick while the current one is used
(`ready`); every device's signal is still read in the same order, so the readings are the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from firmware_sim.signals import Signal, make_signal, signal_class
from firmware_sim.signals.replay import Replay

CHUNK_S = 60.0  # signals are generated this many seconds ahead (a signal costs per call: 10 s took 1.3-3.5x as long)
CHUNK_MIN = 64  # and at least this many readings (slow signals: fewer, larger calls)


class FleetReadings:
    def __init__(
        self,
        kind: str,
        replay: Replay | None,
        features: list[str],
        rate: float,
        seed: int,
        *,
        first_index: int,
        offset: int,
        ids: list[str],
        duration_s: float,
        params: dict[str, Any],
        targets: list[str] | None = None,
    ) -> None:
        """Devices `first_index` + i (global), at `offset` + i within their fleet (a replay assigns by it);
        `targets`: a forecast bundle's target names, whose true values are read alongside when the signal has
        them (`target` is then (D, K, T), else None)."""
        sig_cls: type[Signal] | Replay = replay or signal_class(kind)
        self.kind, self.replay, self.rate, self.params = kind, replay, rate, params
        self.truth_kind = sig_cls.truth_kind  # label | anomaly | ...
        self.labels = list(sig_cls.labels)  # the signal's label names, by truth index
        self.cols = [sig_cls.channels.index(f) for f in features]
        # forecast truth: a replay's target columns, else the signal's own channels (before any fault)
        self.target_cols: list[int] | None = None
        self.target_from_chunk = bool(targets) and replay is not None and replay.truth_kind == "target"
        if targets and replay is None and all(t in sig_cls.channels for t in targets):
            self.target_cols = [sig_cls.channels.index(t) for t in targets]
        n = len(ids)
        if replay is not None:  # each device its recording: by name, else by its place in the fleet
            self.signals: list[Signal] = [
                replay.signal(rate, seed, first_index + i, replay.assign(ids[i], offset + i)) for i in range(n)
            ]
        else:
            self.signals = [make_signal(kind, rate, seed, first_index + i, duration_s, **params) for i in range(n)]
        self.chunk = max(CHUNK_MIN, round(CHUNK_S * rate))
        self.x = np.zeros((n, self.chunk, len(features)), np.float32)  # (D, K, F) the chunk in use
        self.truth = np.zeros((n, self.chunk), np.int64)  # (D, K)
        scored = self.target_from_chunk or self.target_cols is not None
        self.target = np.zeros((n, self.chunk, len(targets or ())), np.float64) if scored else None  # (D, K, T)
        # the chunk after it, read ahead device by device (allocated when the run is longer than one chunk)
        self._next_x: np.ndarray | None = None  # (D, K, F)
        self._next_truth: np.ndarray | None = None  # (D, K)
        self._next_target: np.ndarray | None = None  # (D, K, T)
        self._current = -1  # the index of the chunk in x (-1: none read yet)
        self._ahead = 0  # devices 0 .. _ahead - 1 have the next chunk in the read-ahead buffers
        self._ticks = math.ceil(duration_s * rate - 1e-6)  # ticks in the run: no chunk is read past its end

    @property
    def first(self) -> int:
        """The reading index (tick) of the chunk's first column."""
        return self._current * self.chunk

    def prefetch(self) -> None:
        """Read the first chunk now (before the clock starts), not at the first tick."""
        if self._current < 0:
            self._read(range(len(self.signals)), self.x, self.truth, self.target)
            self._current = 0

    def ready(self, k: int, n: int = 1) -> int:
        """Make ticks k .. k + n - 1 (inside one chunk, ticks in order) readable in `x` and `truth`, reading
        ahead the share of the next chunk that is due by then; returns tick k's column in the chunk."""
        c, j = divmod(k, self.chunk)
        if c != self._current:
            if self._current < 0:  # the first chunk, straight into x
                self._read(range(len(self.signals)), self.x, self.truth, self.target)
            else:
                self._read_ahead(len(self.signals))  # normally done already, a few devices per tick
                assert self._next_x is not None and self._next_truth is not None
                self.x, self._next_x = self._next_x, self.x
                self.truth, self._next_truth = self._next_truth, self.truth
                if self.target is not None:
                    assert self._next_target is not None
                    self.target, self._next_target = self._next_target, self.target
            self._current, self._ahead = c, 0
        if (c + 1) * self.chunk < self._ticks:  # the run goes on into the next chunk
            self._read_ahead(math.ceil(len(self.signals) * (j + n) / self.chunk))
        return j

    def _read_ahead(self, upto: int) -> None:
        """The next chunk of devices _ahead .. upto - 1, into the read-ahead buffers."""
        upto = min(upto, len(self.signals))
        if upto <= self._ahead:
            return
        if self._next_x is None or self._next_truth is None:
            self._next_x, self._next_truth = np.zeros_like(self.x), np.zeros_like(self.truth)
            self._next_target = None if self.target is None else np.zeros_like(self.target)
        self._read(range(self._ahead, upto), self._next_x, self._next_truth, self._next_target)
        self._ahead = upto

    def _read(self, devices: range, x: np.ndarray, truth: np.ndarray, target: np.ndarray | None) -> None:
        for i in devices:
            c = self.signals[i].read(self.chunk)
            x[i] = c.x[:, self.cols]
            truth[i] = c.truth
            if target is not None:
                target[i] = c.target if self.target_cols is None else c.x[:, self.target_cols]

    def calibration(self) -> Signal:
        """A signal of the same kind that is no device's (device index 1,000,000): the host's step time."""
        if self.replay is not None:
            return self.replay.signal(self.rate, 0, 1_000_000, 0)
        return make_signal(self.kind, self.rate, 0, 1_000_000, None, **self.params)
