"""`step_many`: N streams' readings in one backend call, the gateway's hot path (a `Predictor` mixin).

Everything is vectorized over N; only readings that fail the vectorized checks take the per-reading
slow path of `step_one`'s rules. When a call steps every stream of the table in slot order (a gateway
ticking its whole fleet) the table's arrays are used as they are: slices instead of gathers, and the
backend's new state replaces the old one without a copy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_runtime.stream.batch import PredictionBatch
from edgernn.errors import ConfigError

if TYPE_CHECKING:
    from edge_runtime.backends.base import Backend
    from edge_runtime.stream.guard import InputGuard, Policies
    from edge_runtime.stream.heads import Head
    from edge_runtime.stream.table import StreamTable

Index = slice | np.ndarray  # which table slots: all of them (a slice) or a gather index


class BatchStepping:
    # set by Predictor.__init__
    backend: Backend
    policies: Policies
    warmup: int
    model_sha: str
    bad: dict[str, int]
    _table: StreamTable
    _guard: InputGuard
    _head: Head
    _tokens: bool
    _n_in: int
    _gap: float
    _step_back: float
    _t_limit: float
    _hold_warmup: bool
    _window: bool
    _win_len: int
    _hop: int
    _targets: list[int]
    _readings: int
    _predictions: int
    _skipped: int
    _held_back: int
    _since_save: int
    _tiles: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    autosave: bool

    def _reset_slot(self, s: int) -> None: ...
    def save_state(self) -> Any: ...
    def _bad_time(self, t: float) -> bool:
        raise NotImplementedError  # Predictor's

    def _time_policy(self, dt: float, flags: list[str]) -> str:
        raise NotImplementedError  # Predictor's

    @property
    def checkpoint_due(self) -> bool:
        raise NotImplementedError  # Predictor's

    def step_many(
        self,
        readings: np.ndarray | Sequence[Any],
        stream_ids: Sequence[str],
        t: float | Sequence[float] | np.ndarray | None = None,
    ) -> PredictionBatch:
        """One reading for each of N distinct streams, stepped in one backend call.

        `readings` is an (N, C) array (fastest), or N readings of any form `step_one` takes; `t` one time
        for all, one per reading, or None for now. Returns a list-like of N entries, `Prediction` or None
        (skipped, held back, between window hops), in the order of `stream_ids`.
        """
        t0 = time.perf_counter()
        tab = self._table
        ids = stream_ids if type(stream_ids) is list else list(stream_ids)
        n = len(ids)
        if len(readings) != n:
            raise ConfigError(f"step_many got {len(readings)} readings for {n} stream ids")
        idx, whole = tab.slots(ids, self._readings + n)
        if n and idx.min() < 0:  # a stream name that `names.py` refuses: counted, never a slot
            return self._without_bad_names(readings, ids, t, idx)
        self._readings += n
        now: Any = time.time() if t is None else t
        scalar_t = not hasattr(now, "__len__")
        if not scalar_t:
            now = np.asarray(now, np.float64)
        flags: dict[int, list[str]] = {}
        subst: dict[int, frozenset[int]] = {}
        drop: list[int] = []
        resets: list[int] = []
        if self._tokens:
            x_raw = self._tokens_many(readings, n, drop, resets)
        else:
            x_raw = self._values_many(readings, n, idx, flags, subst, drop, resets)

        # time: backwards, or too long a gap (NaN: no reading yet, fails both comparisons)
        dt = now - (tab.last_t if whole else tab.last_t[idx])
        odd = dt < 0
        odd |= dt > self._gap
        if t is not None:  # own times: NaN, inf or beyond the future bound are bad (NaN fails <=)
            odd |= np.logical_not(np.less_equal(now, self._t_limit))
        if np.count_nonzero(odd):  # far cheaper than a ufunc reduction such as odd.any()
            self._time_many(now, dt, odd, flags, drop, resets)
        for i in resets:
            self._reset_slot(int(idx[i]))

        run: np.ndarray | None = None  # rows of this call that are stepped; None: all of them
        sel: Index = slice(None) if whole else idx
        if drop:
            keep = np.ones(n, bool)
            keep[drop] = False
            run = np.flatnonzero(keep)
            sel = idx[run]
            self._skipped += n - len(run)
        times = np.full(n, float(now)) if scalar_t else np.asarray(now, np.float64)
        t_run = times if run is None else times[run]
        tab.last_t[sel] = t_run
        x = x_raw if run is None else x_raw[run]
        if not self._tokens:
            tab.last_good[sel] = x
            tab.good_at[sel] = self._readings
            _, _, off, scale = self._tiled(len(x))
            xs = x.reshape(-1) - off  # float64 like step_one's plain floats: both paths feed identical inputs
            xs /= scale
            x = xs.astype(np.float32).reshape(x.shape)
        if len(x) == 0:
            return PredictionBatch(ids, np.full(n, -1), times[:0], np.zeros(0, np.int64), np.zeros((0, 0)))

        done: np.ndarray | None = None
        if self._window:
            gather = np.arange(len(tab.ids))[sel]
            y, made, done = self._window_many(gather, x)
            run = (np.arange(n) if run is None else run)[made]
            sel, t_run = gather[made], t_run[made]
        else:
            if run is None and whole:
                y, tab.state = self.backend.step(x, tab.state)
                new = tab.state
            else:
                assert isinstance(sel, np.ndarray)  # a slice only when every slot runs
                state = tuple(np.take(a, sel, axis=1) for a in tab.state)
                y, new = self.backend.step(x, state)
                for a, b in zip(tab.state, new, strict=True):
                    a[:, sel] = b
            poisoned = self._poisoned_rows(y, new, sel)
            if poisoned is not None:  # rare: NaN/inf out of the model; those streams restart
                run = (np.arange(n) if run is None else run)[~poisoned]
                sel = np.arange(len(tab.ids))[sel][~poisoned]
                y, t_run = y[~poisoned], t_run[~poisoned]
            if self.warmup:
                done = tab.steps[sel].copy()
                tab.steps[sel] += 1
        warming = None if done is None or not self.warmup else done < self.warmup
        if warming is not None and self._hold_warmup and warming.any():
            self._held_back += int(warming.sum())
            held, run = warming, np.arange(n) if run is None else run
            sel = np.arange(len(tab.ids))[sel]
            self._head.held_many(y[held], tab, sel[held], x_raw[run[held]])
            run, sel, y, t_run, warming = run[~held], sel[~held], y[~held], t_run[~held], None
        if run is None:
            rows = np.arange(n)
        else:
            rows = np.full(n, -1, np.int64)
            rows[run] = np.arange(len(run))
        tab.seq[sel] += 1
        seq = tab.seq[sel].copy()
        batch = self._postprocess_many(ids, rows, run, sel, t_run, seq, y, x_raw, subst, warming, flags)
        self._predictions += len(seq)
        self._since_save += n
        if self.autosave and self.checkpoint_due:
            self.save_state()
        batch.latency_us = (time.perf_counter() - t0) * 1e6
        return batch

    def _values_many(
        self,
        readings: Any,
        n: int,
        idx: np.ndarray,
        flags: dict[int, list[str]],
        subst: dict[int, frozenset[int]],
        drop: list[int],
        resets: list[int],
    ) -> np.ndarray:
        """(N, C) float64 raw values; rows failing the vectorized check are repaired one by one."""
        guard = self._guard
        if isinstance(readings, np.ndarray) and readings.shape == (n, self._n_in) and readings.dtype.kind in "fiu":
            x = np.ascontiguousarray(readings, np.float64)
        else:
            x = np.full((n, self._n_in), np.nan)
            for i, r in enumerate(readings):
                vals = guard.quick(r)
                if vals is not None:
                    x[i] = vals
        lo, hi, _, _ = self._tiled(n)
        flat = x.reshape(-1)
        ok = flat >= lo
        ok &= flat <= hi  # NaN fails both
        if np.count_nonzero(ok) == ok.size:
            return x
        ok = ok.reshape(x.shape)
        if x is readings:
            x = x.copy()  # repaired in place below; never the caller's array
        for i in np.flatnonzero(~ok.all(axis=1)).tolist():
            src = readings[i] if not isinstance(readings, np.ndarray) else x[i]
            v = guard.repair(src, self._table.good(int(idx[i])))
            for reason in v.reasons:
                self.bad[reason] += 1
            flags[i] = list(v.flags)
            if v.values is None:
                drop.append(i)
                x[i] = 0.0
                if v.reset:
                    resets.append(i)
            else:
                x[i] = v.values
                subst[i] = v.substituted
        return x

    def _without_bad_names(self, readings: Any, ids: list[str], t: Any, idx: np.ndarray) -> PredictionBatch:
        """step_many of the readings whose stream name is valid; the others are counted `bad_stream`."""
        good = np.flatnonzero(idx >= 0)
        n_bad = len(ids) - len(good)
        self._readings += n_bad
        self._skipped += n_bad
        self.bad["bad_stream"] += n_bad
        sub_t = t if t is None or not hasattr(t, "__len__") else np.asarray(t, np.float64)[good]
        sub_x = readings[good] if isinstance(readings, np.ndarray) else [readings[i] for i in good.tolist()]
        batch = self.step_many(sub_x, [ids[i] for i in good.tolist()], sub_t)
        rows = np.full(len(ids), -1, np.int64)
        rows[good] = batch.rows
        batch.stream_ids, batch.rows = ids, rows
        return batch

    def _poisoned_rows(self, y: np.ndarray, new: tuple[np.ndarray, ...], sel: Index) -> np.ndarray | None:
        """(M,) rows whose output (M, O) or new state (L, M, H) holds NaN/inf, their streams reset and
        counted; None if none (one sum per array: NaN/inf anywhere makes it non-finite)."""
        tab = self._table
        if np.isfinite(float(y.sum()) + sum(float(a.sum()) for a in new)):
            return None
        bad = ~np.isfinite(y).all(axis=1)
        for a in new:
            bad |= ~np.isfinite(a).all(axis=(0, 2))
        slots = np.arange(len(tab.ids))[sel][bad]
        for s in slots.tolist():
            self._reset_slot(s)
        self.bad["bad_state"] += len(slots)
        self._skipped += len(slots)
        return bad

    def _tiled(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Range bounds, offset and scale repeated for n readings, flat (n * C,): elementwise ops on flat
        arrays run several times faster than broadcasting a row of C over (n, C)."""
        got = self._tiles.get(n)
        if got is None:
            if len(self._tiles) >= 4:
                self._tiles.clear()
            g = self._guard
            lo, hi, off, scale = (np.tile(r, n) for r in (g.lo_arr, g.hi_arr, g.offset, g.scale))
            got = self._tiles[n] = (lo, hi, off, scale)
        return got

    def _tokens_many(self, readings: Any, n: int, drop: list[int], resets: list[int]) -> np.ndarray:
        guard = self._guard
        reset = self.policies.unknown_token == "reset"
        x = np.zeros(n, np.int64)
        for i, r in enumerate(readings):
            tok = guard.quick_token(r)
            if tok is None:
                self.bad["unknown_token"] += 1
                drop.append(i)
                if reset:
                    resets.append(i)
            else:
                x[i] = tok
        return x

    def _time_many(
        self,
        now: Any,
        dt: np.ndarray,
        odd: np.ndarray,
        flags: dict[int, list[str]],
        drop: list[int],
        resets: list[int],
    ) -> None:
        """The per-reading time rules of `step_one` (`_time_ok`) for the rows flagged odd."""
        scalar = not hasattr(now, "__len__")
        for i in np.flatnonzero(odd).tolist():
            t = float(now if scalar else now[i])
            if self._bad_time(t):
                self.bad["bad_time"] += 1
                if i not in drop:
                    drop.append(i)
                continue
            d = float(dt[i])
            if d != d or 0 <= d <= self._gap:
                continue  # a stream's first reading, or a future bound that was only stale
            if d < -self._step_back:
                self.bad["clock_step"] += 1
                flags.setdefault(i, []).append(f"clock_step:{d:+.3g}s")
                if self.policies.clock_step == "skip":
                    if i not in drop:
                        drop.append(i)
                else:
                    resets.append(i)
                    flags[i].append("state_reset")
                continue
            policy = self._time_policy(d, flags.setdefault(i, []))
            if policy == "skip" and i not in drop:
                drop.append(i)
            elif policy == "reset":
                resets.append(i)
                flags[i].append("state_reset")

    def _window_many(self, slots: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ring-buffer writes for N streams; re-run the windows due. -> y (M, O), rows made, readings before."""
        tab, length = self._table, self._win_len
        pos = tab.win_pos[slots]
        tab.win[slots, pos] = x
        tab.win[slots, pos + length] = x
        tab.win_pos[slots] = (pos + 1) % length
        done = tab.steps[slots]
        tab.steps[slots] = done + 1
        made = np.flatnonzero((done + 1) % self._hop == 0)
        take = ((pos[made] + 1) % length)[:, None] + np.arange(length)  # (M, T)
        windows = tab.win[slots[made][:, None], take]  # (M, T, C) oldest first
        y = self.backend.window(windows) if len(made) else np.zeros((0, self._head.n_out), np.float32)
        return y, made, done[made]

    def _postprocess_many(
        self,
        ids: list[str],
        rows: np.ndarray,
        run: np.ndarray | None,
        sel: Index,
        times: np.ndarray,
        seq: np.ndarray,
        y: np.ndarray,
        x_raw: np.ndarray,
        subst: dict[int, frozenset[int]],
        warming: np.ndarray | None,
        flags: dict[int, list[str]],
    ) -> PredictionBatch:
        row_flags = {int(rows[i]): f for i, f in flags.items() if rows[i] >= 0}
        actual = x_raw if run is None else x_raw[run]  # (M, C) the readings y was made at
        sub = {int(r): subst[i] for i in subst if (r := rows[i]) >= 0}
        values, fields = self._head.many(y, self._table, sel, actual, sub)
        return PredictionBatch(
            ids, rows, times, seq, values, warming=warming, flags=row_flags, model=self.model_sha, **fields
        )
