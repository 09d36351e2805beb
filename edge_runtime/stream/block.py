"""`step_block`: K ticks of readings for N streams in one call, with the result of K `step_many` calls.

A simulator in virtual time, or a gateway catching up on a backlog, holds several ticks of readings at once.
Each tick is still stepped through the model one reading per stream, the state carried from tick to tick as
on the device (K backend calls). What runs once per block instead of once per tick is the Python around the
model: input checks, scaling, postprocessing and the batch that comes back.

When a reading in the block needs a per-reading rule (out of range or missing, a time gap or a step back,
a held-back warm-up), or the model is a token or window model, the block is stepped tick by tick with
`step_many` and the batches joined: the result does not depend on which path ran. Probabilities agree with
the tick-by-tick ones to float32 rounding (~1e-7), as `step_many`'s agree with `step_one`'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from edge_runtime.stream.batch import PredictionBatch, join_batches
from edge_runtime.stream.many import ManyStep
from edge_runtime.stream.parts import Parts
from edgernn.errors import ConfigError


class BlockStep:
    def __init__(self, parts: Parts, many: ManyStep) -> None:
        self.table, self.guard, self.clock, self.backend = parts.table, parts.guard, parts.clock, parts.backend
        self.head, self.counts, self.checkpoints, self.model = parts.head, parts.counts, parts.checkpoints, parts.model
        self.cadence = parts.cadence
        self.many = many  # the tick-by-tick path, for blocks that need a per-reading rule

    def step(self, readings: np.ndarray, stream_ids: Sequence[str], t: np.ndarray | Sequence[float]) -> PredictionBatch:
        """`Predictor.step_block`: readings (K, N, C), times (K, N) or (K,) -> K * N entries, tick-major."""
        try:
            x = np.asarray(readings, np.float64)  # NaN for a missing value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"step_block takes an array of numbers shaped (ticks, streams, features): {e}") from e
        if self.guard.tokens:
            raise ConfigError("step_block steps models of numeric readings; a token model steps with step_many")
        if x.ndim != 3 or x.shape[2] != self.guard.n:
            raise ConfigError(f"step_block takes readings shaped (ticks, streams, {self.guard.n}), got {x.shape}")
        k_ticks, n = x.shape[:2]
        ids = list(stream_ids)
        if len(ids) != n:
            raise ConfigError(f"step_block got {n} readings a tick for {len(ids)} stream ids")
        if k_ticks == 0:
            return PredictionBatch([], np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 0)))
        times = np.asarray(t, np.float64)
        if times.size not in (k_ticks, k_ticks * n):
            raise ConfigError(
                f"step_block: t is one time per tick ({k_ticks},) or per reading ({k_ticks}, {n}), got {times.shape}"
            )
        times = np.broadcast_to(times.reshape(k_ticks, -1), (k_ticks, n))  # (K, N)
        split = self.checkpoints.ticks_to_due(n)
        if 0 < split < k_ticks:  # checkpoint after the same tick as tick by tick would
            first = self.step(x[:split], ids, times[:split])
            return join_batches([first, self.step(x[split:], ids, times[split:])])
        idx, whole = self.table.slots(ids, self.counts.readings + k_ticks * n)
        if not self._block_is_plain(x, times, idx, whole):
            return join_batches([self.many.step(x[k], ids, t=times[k]) for k in range(k_ticks)])
        return self._step_plain_block(x, ids, times, idx, whole)

    def _block_is_plain(self, x: np.ndarray, times: np.ndarray, idx: np.ndarray, whole: bool) -> bool:
        """Nothing in the block needs a per-reading rule: every value in range, times in order without gaps,
        no prediction held back while warming up, a streaming model that steps on every reading."""
        # a window or pooling model, or a stream name refused
        if self.cadence.window or self.cadence.pool > 1 or (len(idx) and idx.min() < 0):
            return False
        tab = self.table
        last = tab.last_t if whole else tab.last_t[idx]
        if not ((tab.own_t if whole else tab.own_t[idx]) | np.isnan(last)).all():
            return False  # a stream on the device's clock starts its own timeline: step_many's rule (clock.py)
        dt = np.diff(times, axis=0, prepend=last[None])  # (K, N); NaN before a stream's first reading
        if np.count_nonzero(self.questioned(x, dt, times)):
            return False
        steps = tab.steps if whole else tab.steps[idx]
        warmup = self.cadence.warmup
        return not (warmup and self.cadence.hold and len(steps) and steps.min() < warmup)

    def questioned(self, x: np.ndarray, dt: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """`Predictor.questioned`: raw values (..., C), dt and own times (...) -> (...) bool."""
        odd = self.guard.outside(x)
        odd |= self.clock.odd(dt, t)
        return odd

    def _step_plain_block(
        self, x: np.ndarray, ids: list[str], times: np.ndarray, idx: np.ndarray, whole: bool
    ) -> PredictionBatch:
        t0 = time.perf_counter()
        tab, g = self.table, self.guard
        k_ticks, n = x.shape[:2]
        sel: slice | np.ndarray = slice(None) if whole else idx
        self.counts.readings += k_ticks * n
        tab.last_t[sel] = times[-1]
        tab.own_t[sel] = True
        tab.last_good[sel] = x[-1]
        tab.good_at[sel] = self.counts.readings
        xs = ((x - g.offset) / g.scale).astype(np.float32)  # (K, N, C): step_many's arithmetic, elementwise
        y = np.empty((k_ticks, n, self.head.n_out), np.float32)  # (K, N, O)
        state = tab.state if whole else tuple(np.take(a, idx, axis=1) for a in tab.state)
        for k in range(k_ticks):  # the model, one reading per stream per tick
            y[k], state = self.backend.step(xs[k], state)
        if whole:
            tab.state = state
        else:
            for a, b in zip(tab.state, state, strict=True):
                a[:, idx] = b
        ticks = np.arange(k_ticks)[:, None]  # (K, 1)
        warming = None
        if warmup := self.cadence.warmup:
            warming = ((tab.steps[sel] + ticks) < warmup).reshape(-1)  # readings since reset, per tick
            tab.steps[sel] += k_ticks
        m = k_ticks * n
        rows = np.arange(m)
        flat_ids = ids * k_ticks
        batch = self._postprocess_block(flat_ids, rows, sel, times.reshape(-1), y, x, warming)
        self.counts.predictions += m
        self.checkpoints.tick(m)
        batch.latency_us = (time.perf_counter() - t0) * 1e6 / k_ticks  # per tick, as step_many reports it
        return batch

    def _postprocess_block(
        self,
        ids: list[str],
        rows: np.ndarray,
        sel: slice | np.ndarray,
        times: np.ndarray,
        y: np.ndarray,  # (K, N, O)
        x_raw: np.ndarray,  # (K, N, C)
        warming: np.ndarray | None,
    ) -> PredictionBatch:
        values, fields = self.head.block(y, self.table, sel, x_raw)
        return PredictionBatch(ids, rows, times, values, warming=warming, model=self.model, **fields)
