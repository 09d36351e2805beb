"""A fleet's readings: one seeded signal per device (or its recording, replayed), read a chunk ahead.

Signals cost per call, so each device's signal is read `chunk` readings at a time into (D, K, F) buffers,
columns in the bundle's feature order, with the signal's ground truth (D, K) alongside, and for a forecast
bundle the true values of its targets (D, K, T): the signal's clean channels, or a replayed file's columns.
"""

from __future__ import annotations

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
        self.x = np.zeros((n, self.chunk, len(features)), np.float32)  # (D, K, F)
        self.truth = np.zeros((n, self.chunk), np.int64)  # (D, K)
        scored = self.target_from_chunk or self.target_cols is not None
        self.target = np.zeros((n, self.chunk, len(targets or ())), np.float64) if scored else None  # (D, K, T)
        self.first = -self.chunk  # the reading index (tick) of the chunk's first column

    def refill(self) -> None:
        """The next chunk of every device's signal."""
        self.first += self.chunk
        for i, sig in enumerate(self.signals):
            c = sig.read(self.chunk)
            self.x[i] = c.x[:, self.cols]
            self.truth[i] = c.truth
            if self.target is not None:
                self.target[i] = c.target if self.target_cols is None else c.x[:, self.target_cols]

    def calibration(self) -> Signal:
        """A signal of the same kind that is no device's (device index 1,000,000): the host's step time."""
        if self.replay is not None:
            return self.replay.signal(self.rate, 0, 1_000_000, 0)
        return make_signal(self.kind, self.rate, 0, 1_000_000, None, **self.params)
