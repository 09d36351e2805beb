"""`step_many`: N streams' readings in one backend call, the gateway's hot path.

Everything is vectorized over N; only readings that fail the vectorized checks take the per-reading
slow path of `step_one`'s rules. When a call steps every stream of the table in slot order (a gateway
ticking its whole fleet) the table's arrays are used as they are: slices instead of gathers, and the
backend's new state replaces the old one without a copy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_runtime.stream.batch import PredictionBatch
from edge_runtime.stream.heads.base import Index
from edge_runtime.stream.parts import Parts
from edgernn.errors import ConfigError


class ManyStep:
    def __init__(self, parts: Parts) -> None:
        self.table, self.guard, self.clock, self.backend = parts.table, parts.guard, parts.clock, parts.backend
        self.head, self.counts, self.checkpoints, self.model = parts.head, parts.counts, parts.checkpoints, parts.model
        c = parts.cadence
        self._warmup, self._hold, self._window, self._hop, self._pool = c.warmup, c.hold, c.window, c.hop, c.pool
        self._tokens = parts.guard.tokens
        self._n_in = parts.guard.n
        # per-N flat range bounds and scaler (see `_tiled`)
        self._tiles: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def step(
        self,
        readings: np.ndarray | Sequence[Any],
        stream_ids: Sequence[str],
        t: float | Sequence[float | None] | np.ndarray | None = None,
        received: float | Sequence[float] | np.ndarray | None = None,
    ) -> PredictionBatch:
        """`Predictor.step_many`: (N, C) readings of N distinct streams -> a batch of N entries."""
        t0 = time.perf_counter()
        tab = self.table
        ids = stream_ids if type(stream_ids) is list else list(stream_ids)
        n = len(ids)
        if len(readings) != n:
            raise ConfigError(f"step_many got {len(readings)} readings for {n} stream ids")
        idx, whole = tab.slots(ids, self.counts.readings + n)
        if not whole and n and idx.min() < 0:  # a name `names.py` refuses: counted, never a slot (whole: none)
            return self._without_bad_names(readings, ids, t, received, idx)
        self.counts.readings += n
        flags: dict[int, list[str]] = {}
        subst: dict[int, frozenset[int]] = {}
        drop: list[int] = []
        resets: list[int] = []
        if self._tokens:
            x_raw = self._tokens_many(readings, n, drop, resets)
        else:
            x_raw = self._values_many(readings, n, idx, flags, subst, drop, resets)

        now, own, last = self._place(t, received, n, idx, whole, flags, drop)
        scalar_t = not hasattr(now, "__len__")
        # time: backwards, or too long a gap (NaN: no reading yet, fails both comparisons); own times: NaN,
        # inf or beyond the future bound
        dt = now - last
        odd = self.clock.odd(dt, None if t is None else now)
        if np.count_nonzero(odd):  # far cheaper than a ufunc reduction such as odd.any()
            self.clock.judge_many(now, dt, odd, flags, drop, resets)
        for i in resets:
            self.table.restart(int(idx[i]))

        run: np.ndarray | None = None  # rows of this call that are stepped; None: all of them
        sel: Index = slice(None) if whole else idx
        if drop:
            keep = np.ones(n, bool)
            keep[drop] = False
            run = np.flatnonzero(keep)
            sel = idx[run]
            self.counts.skipped += n - len(run)
        times = np.full(n, float(now)) if scalar_t else np.asarray(now, np.float64)
        t_run = times if run is None else times[run]
        tab.last_t[sel] = t_run
        if own is not None:  # None: no stream changes clock
            tab.own_t[sel] = own if type(own) is bool else (own if run is None else own[run])
        x = x_raw if run is None else x_raw[run]
        if not self._tokens:
            tab.last_good[sel] = x
            tab.good_at[sel] = self.counts.readings
            _, _, off, scale = self._tiled(len(x))
            xs = x.reshape(-1) - off  # float64 like step_one's plain floats: both paths feed identical inputs
            xs /= scale
            if self._pool > 1:  # only the streams whose pool fills step the model (cadence.py)
                run, sel, t_run, xs = self._pooled(run, sel, t_run, xs.reshape(x.shape))
            x = xs.astype(np.float32).reshape(-1, x.shape[1])
        if len(x) == 0:
            return PredictionBatch(ids, np.full(n, -1), times[:0], np.zeros((0, 0)))

        done: np.ndarray | None = None
        if self._window:
            gather = np.arange(len(tab.ids))[sel]
            y, made, done = self._window_many(gather, x)
            run = (np.arange(n) if run is None else run)[made]
            sel, t_run = gather[made], t_run[made]
        else:
            if run is None and whole:
                y, tab.state = self.backend.step(x, tab.state)
            else:
                assert isinstance(sel, np.ndarray)  # a slice only when every slot runs
                state = tuple(np.take(a, sel, axis=1) for a in tab.state)
                y, new = self.backend.step(x, state)
                for a, b in zip(tab.state, new, strict=True):
                    a[:, sel] = b
            poisoned = self._poisoned_rows(y, sel)
            if poisoned is not None:  # rare: NaN/inf out of the model; those streams restart
                run = (np.arange(n) if run is None else run)[~poisoned]
                sel = np.arange(len(tab.ids))[sel][~poisoned]
                y, t_run = y[~poisoned], t_run[~poisoned]
            if self._warmup:
                done = tab.steps[sel].copy()
                tab.steps[sel] += 1
        warming = None if done is None or not self._warmup else done < self._warmup
        if warming is not None and self._hold and warming.any():
            self.counts.held_back += int(warming.sum())
            held, run = warming, np.arange(n) if run is None else run
            sel = np.arange(len(tab.ids))[sel]
            self.head.held_many(y[held], tab, sel[held], x_raw[run[held]])
            run, sel, y, t_run, warming = run[~held], sel[~held], y[~held], t_run[~held], None
        if run is None:
            rows = np.arange(n)
        else:
            rows = np.full(n, -1, np.int64)
            rows[run] = np.arange(len(run))
        batch = self._postprocess_many(ids, rows, run, sel, t_run, y, x_raw, subst, warming, flags)
        self.counts.predictions += len(y)
        self.checkpoints.tick(n)
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
        guard = self.guard
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
            v = guard.repair(src, self.table.good(int(idx[i])))
            for reason in v.reasons:
                self.counts.bad[reason] += 1
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

    def _place(
        self, t: Any, received: Any, n: int, idx: np.ndarray, whole: bool, flags: dict[int, list[str]], drop: list[int]
    ) -> tuple[Any, Any, np.ndarray]:
        """Each reading's time on its stream's clock (clock.py): (times, a float or (N,); own: True, False or
        (N,) bool, the time is the reading's own, None when no stream changes clock; (N,) the streams' last
        times to compare with, NaN where a stream's own timeline starts). Readings without a time in a
        stream on its own clock are `no_time`."""
        tab = self.table
        last = tab.last_t if whole else tab.last_t[idx]
        now: Any
        own: Any
        if t is None:
            now, own = (time.time() if received is None else _times(received)), False
        elif type(t) is list and None in t:  # some readings carry no time of their own: the device's clock
            own = np.fromiter((v is not None for v in t), bool, n)
            dev = np.broadcast_to(time.time() if received is None else _times(received), (n,))
            now = np.fromiter((v if v is not None else np.nan for v in t), np.float64, n)
            now[~own] = dev[~own]
        else:
            now, own = _times(t), True
        was = tab.own_t if whole else tab.own_t[idx]
        k = np.count_nonzero(was)  # streams already on their readings' clock (far cheaper than all()/any())
        if (own is True and k == n) or (own is False and k == 0):
            return now, None, last  # the common cases: every stream stays on the clock it was on
        if own is not False and k < n:  # streams on the device's clock: their own timeline starts here
            last = np.where(was | ~np.asarray(own), last, np.nan)
        if own is not True and k:
            mixed = was & (last == last)
            if own is not False:
                mixed &= ~own
            if mixed.any():  # on their readings' clock: no_time, at the stream's last time
                now = np.array(np.broadcast_to(now, (n,)), np.float64)
                now[mixed] = last[mixed]
                for i in np.flatnonzero(mixed).tolist():
                    if not self.clock.no_time(flags.setdefault(i, [])) and i not in drop:
                        drop.append(i)
                own = mixed if own is False else own | mixed
        return now, own, last

    def _without_bad_names(
        self, readings: Any, ids: list[str], t: Any, received: Any, idx: np.ndarray
    ) -> PredictionBatch:
        """step_many of the readings whose stream name is valid; the others are counted `bad_stream`."""
        good = np.flatnonzero(idx >= 0)
        n_bad = len(ids) - len(good)
        self.counts.readings += n_bad
        self.counts.skipped += n_bad
        self.counts.bad["bad_stream"] += n_bad
        sub_t, sub_received = (_rows(v, good) for v in (t, received))
        sub_x = readings[good] if isinstance(readings, np.ndarray) else [readings[i] for i in good.tolist()]
        batch = self.step(sub_x, [ids[i] for i in good.tolist()], sub_t, sub_received)
        rows = np.full(len(ids), -1, np.int64)
        rows[good] = batch.rows
        batch.stream_ids, batch.rows = ids, rows
        return batch

    def _poisoned_rows(self, y: np.ndarray, sel: Index) -> np.ndarray | None:
        """(M,) rows whose first output y[:, 0] is NaN/inf, their streams reset and counted; None if none.

        step_one's rule: a NaN state makes every output NaN, so one output per row tells; an inf LSTM cell
        with finite outputs is caught before each checkpoint (`Checkpoints`). One element at N = 1, one sum
        (NaN/inf anywhere makes it non-finite) otherwise: this runs on every call, and a reduction over
        every state array cost a quarter of a batch-1 call."""
        col = y[:, 0]  # (M,)
        if math.isfinite(col[0] if len(col) == 1 else float(col.sum())):
            return None
        bad = ~np.isfinite(col)
        if not bad.any():  # finite outputs whose sum overflowed
            return None
        tab = self.table
        slots = np.arange(len(tab.ids))[sel][bad]
        for s in slots.tolist():
            self.table.restart(s)
        self.counts.bad["bad_state"] += len(slots)
        self.counts.skipped += len(slots)
        return bad

    def _tiled(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Range bounds, offset and scale repeated for n readings, flat (n * C,): elementwise ops on flat
        arrays run several times faster than broadcasting a row of C over (n, C)."""
        got = self._tiles.get(n)
        if got is None:
            if len(self._tiles) >= 4:
                self._tiles.clear()
            g = self.guard
            lo, hi, off, scale = (np.tile(r, n) for r in (g.lo_arr, g.hi_arr, g.offset, g.scale))
            got = self._tiles[n] = (lo, hi, off, scale)
        return got

    def _tokens_many(self, readings: Any, n: int, drop: list[int], resets: list[int]) -> np.ndarray:
        guard = self.guard
        reset = self.guard.policies.unknown_token == "reset"
        x = np.zeros(n, np.int64)
        for i, r in enumerate(readings):
            tok = guard.quick_token(r)
            if tok is None:
                self.counts.bad["unknown_token"] += 1
                drop.append(i)
                if reset:
                    resets.append(i)
            else:
                x[i] = tok
        return x

    def _pooled(
        self, run: np.ndarray | None, sel: Index, t_run: np.ndarray, xs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scaled readings (M, C) float64 into their streams' pools -> (rows run, slots, times, pool means)
        of the streams whose pool now holds `pool` readings; those pools empty. step_one's arithmetic."""
        tab, k = self.table, self._pool
        slots = np.arange(len(tab.ids))[sel]  # (M,) distinct
        tab.pool_sum[slots] += xs
        count = tab.pool_n[slots] + 1
        full = count >= k
        tab.pool_n[slots] = np.where(full, 0, count)
        made = np.flatnonzero(full)
        done = slots[made]
        mean = tab.pool_sum[done] / k  # (F, C)
        tab.pool_sum[done] = 0.0
        rows = (np.arange(len(slots)) if run is None else run)[made]
        return rows, done, t_run[made], mean

    def _window_many(self, slots: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ring-buffer writes for N streams; re-run the windows due. -> y (M, O), rows made, readings before."""
        tab, length = self.table, self._window
        pos = tab.win_pos[slots]
        tab.win[slots, pos] = x
        tab.win[slots, pos + length] = x
        tab.win_pos[slots] = (pos + 1) % length
        done = tab.steps[slots]
        tab.steps[slots] = done + 1
        made = np.flatnonzero((done + 1) % self._hop == 0)
        take = ((pos[made] + 1) % length)[:, None] + np.arange(length)  # (M, T)
        windows = tab.win[slots[made][:, None], take]  # (M, T, C) oldest first
        y = self.backend.window(windows) if len(made) else np.zeros((0, self.head.n_out), np.float32)
        return y, made, done[made]

    def _postprocess_many(
        self,
        ids: list[str],
        rows: np.ndarray,
        run: np.ndarray | None,
        sel: Index,
        times: np.ndarray,
        y: np.ndarray,
        x_raw: np.ndarray,
        subst: dict[int, frozenset[int]],
        warming: np.ndarray | None,
        flags: dict[int, list[str]],
    ) -> PredictionBatch:
        row_flags = {int(rows[i]): f for i, f in flags.items() if rows[i] >= 0}
        actual = x_raw if run is None else x_raw[run]  # (M, C) the readings y was made at
        sub = {int(r): subst[i] for i in subst if (r := rows[i]) >= 0}
        values, fields = self.head.many(y, self.table, sel, actual, sub)
        return PredictionBatch(
            ids, rows, times, values, warming=warming, flags=row_flags, model=self.model, **fields
        )


def _times(t: Any) -> Any:
    """One time (a float) or one per reading ((N,) float64)."""
    return t if not hasattr(t, "__len__") else np.asarray(t, np.float64)


def _rows(t: Any, rows: np.ndarray) -> Any:
    """Times for some rows: a single time or None as it is; a list (which may hold None) stays a list."""
    if t is None or not hasattr(t, "__len__"):
        return t
    if type(t) is list:
        return [t[i] for i in rows.tolist()]
    return np.asarray(t, np.float64)[rows]
