"""`TimeRules`: the time rules of a reading, one verdict for every stepping path.

A reading's own time t is checked against its stream's last time: backwards (`backwards`), more than the
max gap later (`gap`), more than the max gap back (`clock_step`: a wall clock set back, the next
recording: the stream restarts instead of skipping everything until time catches up), or NaN, infinite or
beyond `max_future` ahead of this device's clock (`bad_time`). Each is counted in the bad-reading counters
and answered by its policy (see `guard.py`). The common case is tested inline by the steppers
(`last <= t <= last + gap and t <= t_limit`); only readings failing it come here.

A stream runs on one clock at a time (`StreamTable.own_t`): its readings' own times, or, for readings that
carry none, this device's clock when each arrived (the source stamps it, so a loop busy with a checkpoint
or a backlog does not turn its own delay into a gap). The two clocks are never compared: a sensor's clock
an hour off (a time-zone slip) would otherwise make every switch a gap and then a clock step, two state
resets that depend on nothing but which clock stamped which reading. So a reading without a time in a
stream whose readings carry one is `no_time`: counted, flagged, and used at the stream's last time (policy
`keep`), or dropped (`skip`); and a stream on the device's clock that starts sending its own times starts
its own timeline there (a clock set after boot), not compared with the device's.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from edge_runtime.stream.guard import Policies

_CLOCK_STEP_S = 10.0  # a step back longer than this restarts a stream's clock, when there is no max gap


class TimeRules:
    def __init__(self, policies: Policies, sample_rate: float | None, bad: dict[str, int]) -> None:
        self.policies = policies
        self._bad = bad  # the predictor's bad-reading counters, by reason
        rate = sample_rate
        gap = policies.max_gap if policies.max_gap is not None else (10.0 / rate if rate else None)
        self.gap = math.inf if gap is None else gap  # compared on the hot path
        self.step_back = _CLOCK_STEP_S if gap is None else gap
        self.t_limit = time.time() + policies.max_future  # later own times are bad; refreshed when passed

    def odd(self, dt: np.ndarray, t: Any = None) -> np.ndarray:
        """dt (...) seconds since each stream's last reading (NaN: its first), t own times or None -> (...)
        bool: backwards, after a gap, or a bad own time (NaN fails every comparison)."""
        odd = dt < 0
        odd |= dt > self.gap
        if t is None:
            return odd
        if hasattr(t, "__len__"):
            odd |= ~(np.asarray(t) <= self.t_limit)
        elif not t <= self.t_limit:  # one time for all: a Python comparison, not three array ops
            odd[...] = True
        return odd

    def bad_time(self, t: float) -> bool:
        """NaN, infinite, or more than `max_future` ahead of this device's clock (refreshing the bound)."""
        try:
            if not math.isfinite(t):
                return True
        except OverflowError:  # an int too large for a float
            return True
        if t > self.t_limit:
            self.t_limit = time.time() + self.policies.max_future
        return bool(t > self.t_limit)

    def no_time(self, flags: list[str]) -> bool:
        """A reading without its own time in a stream whose readings carry one: counted and flagged; True
        when it is used (policy `keep`: at the stream's last time), False when it is dropped (`skip`)."""
        self._bad["no_time"] += 1
        flags.append("no_time")
        return self.policies.no_time == "keep"

    def judge(self, t: float, last: float, flags: list[str]) -> str:
        """One reading whose time failed the inline test: "use", "skip" (not stepped) or "reset" (restart
        the stream, then use it); counted and flagged."""
        if self.bad_time(t):
            self._bad["bad_time"] += 1
            return "skip"
        if last != last or last <= t <= last + self.gap:
            return "use"  # a stream's first reading, or a future bound that was only stale
        if t < last - self.step_back:
            self._bad["clock_step"] += 1
            flags.append(f"clock_step:{t - last:+.3g}s")
            return "skip" if self.policies.clock_step == "skip" else "reset"
        return self._policy(t - last, flags)

    def judge_many(
        self,
        now: Any,
        dt: np.ndarray,
        odd: np.ndarray,
        flags: dict[int, list[str]],
        drop: list[int],
        resets: list[int],
    ) -> None:
        """`judge` for the rows flagged odd: rows to drop and to reset, flags by row."""
        scalar = not hasattr(now, "__len__")
        for i in np.flatnonzero(odd).tolist():
            t = float(now if scalar else now[i])
            if self.bad_time(t):
                self._bad["bad_time"] += 1
                if i not in drop:
                    drop.append(i)
                continue
            d = float(dt[i])
            if d != d or 0 <= d <= self.gap:
                continue  # a stream's first reading, or a future bound that was only stale
            if d < -self.step_back:
                self._bad["clock_step"] += 1
                flags.setdefault(i, []).append(f"clock_step:{d:+.3g}s")
                if self.policies.clock_step == "skip":
                    if i not in drop:
                        drop.append(i)
                else:
                    resets.append(i)
                    flags[i].append("state_reset")
                continue
            policy = self._policy(d, flags.setdefault(i, []))
            if policy == "skip" and i not in drop:
                drop.append(i)
            elif policy == "reset":
                resets.append(i)
                flags[i].append("state_reset")

    def _policy(self, dt: float, flags: list[str]) -> str:
        """Count and flag a reading `dt` seconds after its stream's last one (backwards or a gap); its policy
        as a verdict ("keep" is "use")."""
        reason = "backwards" if dt < 0 else "gap"
        self._bad[reason] += 1
        flags.append(f"{reason}:{dt:+.3g}s")
        policy = str(getattr(self.policies, reason))
        return "use" if policy == "keep" else policy
