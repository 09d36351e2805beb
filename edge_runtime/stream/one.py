"""`step_one`: one reading of one stream, the device's path; plain Python where NumPy's per-call cost is more.

Validate (a clean reading in one pass, `guard.quick_scaled`; anything else through `guard.repair` and the
policies), check its time (`clock.py`), one backend step on the stream's slot of the table, warm-up, then
the task head. Returns None when the reading makes no prediction.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from edge_runtime.stream.names import name_problem
from edge_runtime.stream.parts import Parts
from edge_runtime.stream.prediction import Prediction


class OneStep:
    def __init__(self, parts: Parts) -> None:
        self.table, self.guard, self.clock, self.backend = parts.table, parts.guard, parts.clock, parts.backend
        self.head, self.counts, self.checkpoints, self.model = parts.head, parts.counts, parts.checkpoints, parts.model
        c = parts.cadence
        self._warmup, self._hold, self._count_steps = c.warmup, c.hold, c.count_steps
        self._window, self._hop, self._pool = c.window, c.hop, c.pool
        self._tokens = parts.guard.tokens
        self._token_reset = parts.guard.policies.unknown_token == "reset"
        self._xbuf = np.zeros((1, parts.guard.n), np.float32)

    def step(self, reading: Any, t: float | None, stream: str, received: float | None = None) -> Prediction | None:
        t0 = time.perf_counter()
        tab, counts, clock = self.table, self.counts, self.clock
        s = tab.slot.get(stream)
        counts.readings += 1
        if s is None:
            if name_problem(stream) is not None:
                counts.refuse("bad_stream")
                return None
            s = tab.add(stream, counts.readings)
        else:
            tab.seen[s] = counts.readings
        flags: list[str] = []
        last = tab.last_t[s]
        own = t is not None
        if t is None:
            if tab.own_t[s] and last == last:  # the stream runs on its readings' clock: see clock.py
                if not clock.no_time(flags):
                    counts.skipped += 1
                    return None
                t, own = float(last), True
            else:
                t = time.time() if received is None else received
        elif not tab.own_t[s]:
            last = math.nan  # the stream's own clock starts here; the device's is not compared with it
        # NaN (a stream's first reading) fails the comparison and takes the slow path
        if not (last <= t <= last + clock.gap and t <= clock.t_limit):
            verdict = clock.judge(t, last, flags)
            if verdict == "skip":
                counts.skipped += 1
                return None
            if verdict == "reset":
                tab.restart(s)
                flags.append("state_reset")
        tab.last_t[s] = t
        tab.own_t[s] = own
        subst: frozenset[int] | None = None
        vals: list[float] | None = None
        x: np.ndarray
        if self._tokens:
            tok = self.guard.quick_token(reading)
            if tok is None:
                counts.bad["unknown_token"] += 1
                self._refuse(s, self._token_reset)
                return None
            x = np.array([tok], np.int64)
        else:
            got = self.guard.quick_scaled(reading)
            if got is None:
                v = self.guard.repair(reading, tab.good(s))
                for reason in v.reasons:
                    counts.bad[reason] += 1
                flags += v.flags
                if v.values is None:
                    self._refuse(s, v.reset)
                    return None
                vals, subst = v.values, v.substituted
                scaled = self.guard.scale_one(vals)
            else:
                vals, scaled = got
            tab.py_good[s] = (counts.readings, vals)
            if self._pool > 1:
                pooled = self._pooled(s, scaled)
                if pooled is None:  # only added to the pool: no model step, no prediction (as between hops)
                    return None
            x = self._xbuf
            x[0] = scaled if self._pool == 1 else pooled  # (1, C); backends copy their input: one buffer serves
        if self._window:
            y = self._window_one(s, x)
            if y is None:
                return None
        elif tab.cap == 1:  # the device case: one stream, the table's arrays are its state
            y, tab.state = self.backend.step(x, tab.state)
            if not math.isfinite(y[0, 0]):  # NaN state makes every output NaN; the rest waits for the checkpoint
                self._poisoned(s)
                return None
        else:
            state = tuple(a[:, s : s + 1] for a in tab.state)
            y, new = self.backend.step(x, state)
            if not math.isfinite(y[0, 0]):
                self._poisoned(s)
                return None
            for a, b in zip(tab.state, new, strict=True):
                a[:, s : s + 1] = b
        if self._count_steps:  # readings since reset: only warm-up and window hops need them
            done = int(tab.steps[s])
            tab.steps[s] = done + 1
            if done < self._warmup:
                if self._hold:
                    counts.held_back += 1
                    self.head.held_one(y, tab, s, vals)
                    return None
                flags.append("warming_up")

        # postprocess
        pred = Prediction(0, t, stream, [], model=self.model, flags=flags)  # seq 0: the publisher gives it
        self.head.one(pred, y, tab, s, vals, subst)
        counts.predictions += 1
        self.checkpoints.tick(1)
        pred.latency_us = (time.perf_counter() - t0) * 1e6
        return pred

    def _pooled(self, s: int, scaled: Any) -> np.ndarray | None:
        """Add a scaled reading (C,) to the stream's pool; the mean (C,) float64 once it holds `pool`
        readings (the pool then empties), else None. step_many's arithmetic, so both paths agree exactly."""
        tab = self.table
        tab.pool_sum[s] += scaled
        n = int(tab.pool_n[s]) + 1
        if n < self._pool:
            tab.pool_n[s] = n
            return None
        mean = tab.pool_sum[s] / self._pool
        tab.pool_sum[s] = 0.0
        tab.pool_n[s] = 0
        return mean

    def _refuse(self, s: int, reset: bool) -> None:
        """A reading that makes no prediction: counted; the stream is reset when the policy says so."""
        self.counts.skipped += 1
        if reset:
            self.table.restart(s)

    def _poisoned(self, s: int) -> None:
        """The step left NaN/inf in the output or the state (a value the model cannot take): the stream
        restarts from a zero state instead of carrying NaN into every later prediction and checkpoint."""
        self.counts.bad["bad_state"] += 1
        self._refuse(s, True)

    def _window_one(self, s: int, x: np.ndarray) -> np.ndarray | None:
        tab, length = self.table, self._window
        pos = int(tab.win_pos[s])
        tab.win[s, pos] = x[0]
        tab.win[s, pos + length] = x[0]
        tab.win_pos[s] = (pos + 1) % length
        if (int(tab.steps[s]) + 1) % self._hop:
            tab.steps[s] += 1
            return None
        start = (pos + 1) % length
        return self.backend.window(tab.win[s : s + 1, start : start + length])  # (1, T, C) oldest first
