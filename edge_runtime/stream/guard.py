"""Bad readings never crash the loop: each problem has a reason, a policy and a counter.

Reasons and their policies (defaults first; `Policies` holds the choice):

| reason        | what                                               | policies                               |
| ------------- | -------------------------------------------------- | -------------------------------------- |
| missing       | a feature absent from the reading                   | hold, impute, skip, reset              |
| non_number    | a value that is not a number ("n/a", None, a list)  | hold, impute, skip, reset              |
| non_finite    | NaN or +-inf                                        | hold, impute, skip, reset              |
| out_of_range  | far outside the training range (see `range_margin`) | keep, hold, impute, skip, reset        |
| extra         | a key the model does not know                       | ignore, skip                           |
| gap           | longer than `max_gap` seconds since the last one    | reset, keep, skip                      |
| backwards     | a timestamp before the stream's last one            | skip, keep, reset                      |
| clock_step    | a timestamp more than the max gap before the last   | reset, skip                            |
|               | one (a wall clock stepped back, a new recording)    |                                        |
| no_time       | no time of its own, in a stream whose readings      | keep (at the stream's last time), skip |
|               | carry one (this device's clock is not compared)     |                                        |
| bad_time      | a time that is NaN, infinite or more than           | skip (always)                          |
|               | `max_future` seconds ahead of this device's clock   |                                        |
| bad_stream    | a stream name that breaks `names.py` (too long,     | skip (always)                          |
|               | `/ + #`, control characters, empty)                 |                                        |
| bad_state     | the model's state turned NaN/inf after a step       | reset (always; that prediction dropped)|
| missing_column| a CSV whose header lacks a feature column           | refuse, allow (then `missing` per row) |

`hold` uses the stream's last good value of that feature (the training mean before there is one),
`impute` the training mean, `skip` drops the reading (no prediction, state untouched), `reset` zeroes the
stream's state and drops the reading (`gap` and `backwards`: resets, then uses it), `keep` uses it as is.
`out_of_range` keeps by default: a real excursion is exactly what an anomaly model must see; it is flagged.
"far outside" means beyond `[min - m * span, max + m * span]` of the training range, `m = range_margin`.
A value that is finite but does not fit the model's float32 input once scaled (1e39) is `non_finite`: kept,
it would turn the hidden state into NaN for good. A bad time or a bad stream name never moves the stream's
last time, so one such reading cannot silence the stream. docs/bad-input.md has the user's view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.names import shown
from edgernn.errors import ConfigError

VALUE_REASONS = ("missing", "non_number", "non_finite", "out_of_range")
REASONS = (
    *VALUE_REASONS,
    *("extra", "gap", "backwards", "clock_step", "no_time", "unknown_token", "bad_time", "bad_stream", "bad_state"),
)
FLOAT32_MAX = float(np.finfo(np.float32).max)
_ALLOWED: dict[str, tuple[str, ...]] = {
    "missing": ("hold", "impute", "skip", "reset"),
    "non_number": ("hold", "impute", "skip", "reset"),
    "non_finite": ("hold", "impute", "skip", "reset"),
    "out_of_range": ("keep", "hold", "impute", "skip", "reset"),
    "extra": ("ignore", "skip"),
    "gap": ("reset", "keep", "skip"),
    "backwards": ("skip", "keep", "reset"),
    "clock_step": ("reset", "skip"),
    "no_time": ("keep", "skip"),
    "unknown_token": ("skip", "reset"),
    "warmup": ("publish", "hold"),
    "missing_column": ("refuse", "allow"),
}


@dataclass
class Policies:
    """What to do with each kind of bad reading (see the module docstring); `warmup`: publish | hold."""

    missing: str = "hold"
    non_number: str = "hold"
    non_finite: str = "hold"
    out_of_range: str = "keep"
    extra: str = "ignore"
    gap: str = "reset"
    backwards: str = "skip"
    clock_step: str = "reset"
    no_time: str = "keep"
    unknown_token: str = "skip"
    warmup: str = "publish"
    missing_column: str = "refuse"  # a whole column absent is a wrong file, not a bad reading: refused at the header
    range_margin: float = 1.0  # far outside = beyond the training range by this many range widths
    max_gap: float | None = None  # seconds; None: 10 sample periods when the sample rate is known, else no check
    max_future: float = 86400.0  # seconds a reading's own time may be ahead of this device's clock

    def __post_init__(self) -> None:
        for reason, allowed in _ALLOWED.items():
            value = getattr(self, reason)
            if value not in allowed:
                raise ConfigError(f"policy {reason}={value!r} is not allowed; choose one of: {', '.join(allowed)}")
        if self.range_margin < 0:
            raise ConfigError(f"range_margin must be >= 0, got {self.range_margin!r}")
        if not self.max_future > 0:
            raise ConfigError(f"max_future must be > 0 seconds, got {self.max_future!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policies:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown policies {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class Verdict:
    """The slow path's answer for one reading: values to use (raw units) or none, and what happened."""

    values: list[float] | None  # None: drop the reading
    flags: list[str]
    reasons: list[str]  # counted once each
    reset: bool = False
    substituted: frozenset[int] = frozenset()  # feature indices whose value was not measured


class InputGuard:
    """Checks readings against the manifest; everything it needs is precomputed at load."""

    def __init__(self, manifest: Manifest, policies: Policies) -> None:
        self.policies = policies
        self.features = list(manifest.input.features)
        self.n = len(self.features)
        self.index = {f: i for i, f in enumerate(self.features)}
        self.tokens = manifest.model.tokens
        self.vocab = {tok: i for i, tok in enumerate(manifest.input.vocabulary)}
        self.vocab_size = manifest.model.vocab_size
        sc = manifest.input.scaler
        lo = manifest.input.ranges.get("min")
        hi = manifest.input.ranges.get("max")
        # the training mean: the standard scaler's offset, else the middle of the training range
        if sc is not None and sc.kind == "standard":
            self.mean = [float(v) for v in sc.offset]
        elif lo and hi:
            self.mean = [(a + b) / 2 for a, b in zip(lo, hi, strict=True)]
        else:
            self.mean = [0.0] * self.n
        if lo and hi and len(lo) == self.n and len(hi) == self.n:
            m = policies.range_margin
            spans = [max(b - a, 1e-6) for a, b in zip(lo, hi, strict=True)]
            self.lo = [a - m * s for a, s in zip(lo, spans, strict=True)]
            self.hi = [b + m * s for b, s in zip(hi, spans, strict=True)]
        else:
            self.lo = [-math.inf] * self.n
            self.hi = [math.inf] * self.n
        # scaling, `(raw - offset) / scale`, as plain floats for the one-reading path
        use = sc is not None and not self.tokens and len(sc.offset) == self.n
        self.offset = [float(v) for v in sc.offset] if use and sc is not None else [0.0] * self.n
        self.scale = [float(v) for v in sc.scale] if use and sc is not None else [1.0] * self.n
        # the fast paths leave to the slow path what float32 cannot hold once scaled (it calls it non_finite)
        fit = [FLOAT32_MAX * abs(d) for d in self.scale]
        self.lo = [max(a, o - f) for a, o, f in zip(self.lo, self.offset, fit, strict=True)]
        self.hi = [min(b, o + f) for b, o, f in zip(self.hi, self.offset, fit, strict=True)]
        self.lo_arr = np.asarray(self.lo, np.float64)
        self.hi_arr = np.asarray(self.hi, np.float64)
        self._check = list(zip(self.lo, self.hi, self.offset, self.scale, strict=True))

    def outside(self, x: np.ndarray) -> np.ndarray:
        """Raw readings (..., F) -> (...) bool: a value the slow path must look at (beyond the widened range,
        NaN, or too large for float32 once scaled); the fast paths' own bounds."""
        return ~np.all((x >= self.lo_arr) & (x <= self.hi_arr), axis=-1)  # NaN fails both

    def scale_one(self, vals: Sequence[float]) -> list[float]:
        return [(v - o) / d for v, o, d in zip(vals, self.offset, self.scale, strict=True)]

    # --- fast path: returns the values in model order, or None when the slow path must look ---------

    def quick_scaled(self, reading: Any) -> tuple[list[Any], list[float]] | None:
        """(raw values, scaled values) of a clean reading in one pass; None when anything is off."""
        try:
            if type(reading) is dict:
                if len(reading) != self.n:
                    return None
                vals = [reading[f] for f in self.features]
            elif type(reading) is list:
                vals = reading[:]  # the caller may refill its list; the held values must not change
            elif isinstance(reading, np.ndarray):
                vals = reading.tolist()
            elif isinstance(reading, (Mapping, str, bytes)):
                return None
            else:
                vals = list(reading)
            # NaN fails both comparisons, so a bad value drops out and the length tells
            scaled = [(v - o) / d for v, (a, b, o, d) in zip(vals, self._check, strict=False) if a <= v <= b]
        except (KeyError, TypeError):
            return None
        if len(scaled) != self.n or len(vals) != self.n:
            return None
        return vals, scaled

    def quick(self, reading: Any) -> list[Any] | None:
        try:
            if isinstance(reading, Mapping):
                if len(reading) != self.n:
                    return None
                vals = [reading[f] for f in self.features]
            elif isinstance(reading, np.ndarray):
                vals = reading.tolist()
            else:
                vals = list(reading)
            if len(vals) != self.n:
                return None
            for v, a, b in zip(vals, self.lo, self.hi, strict=True):
                if not a <= v <= b:  # NaN fails every comparison
                    return None
        except (KeyError, TypeError):
            return None
        return vals

    def quick_token(self, reading: Any) -> int | None:
        if isinstance(reading, Mapping):
            reading = reading.get(self.features[0]) if len(reading) == 1 else None
        elif isinstance(reading, (list, tuple)) and len(reading) == 1:
            reading = reading[0]
        if isinstance(reading, str):
            return self.vocab.get(reading)
        if isinstance(reading, (int, np.integer)) and not isinstance(reading, bool) and 0 <= reading < self.vocab_size:
            return int(reading)
        return None

    # --- slow path: name every problem, apply the policies ------------------------------------------

    def repair(self, reading: Any, last_good: Sequence[float] | np.ndarray | None) -> Verdict:
        """Work out what is wrong with `reading` and what to use instead; never raises."""
        p = self.policies
        flags: list[str] = []
        reasons: list[str] = []
        values: list[Any] = [None] * self.n
        present = [False] * self.n
        if isinstance(reading, Mapping):
            extra = [k for k in reading if k not in self.index]
            if extra:
                reasons.append("extra")
                flags.append("extra:" + ",".join(shown(k) for k in extra[:4]))
                if p.extra == "skip":
                    return Verdict(None, flags, reasons)
            for f, i in self.index.items():
                if f in reading:
                    values[i], present[i] = reading[f], True
        else:
            try:
                seq = [] if isinstance(reading, (str, bytes)) else _as_list(reading)
            except TypeError:
                seq = []  # not a reading at all: every feature is missing
            if len(seq) > self.n:
                reasons.append("extra")
                flags.append(f"extra:{len(seq) - self.n}")
                if p.extra == "skip":
                    return Verdict(None, flags, reasons)
            for i, v in enumerate(seq[: self.n]):
                values[i], present[i] = v, True

        out: list[float] = []
        substituted: set[int] = set()
        reset = False
        for i, f in enumerate(self.features):
            reason = ""
            num: float | None = None
            if not present[i]:
                reason = "missing"
            else:
                num = _as_number(values[i])
                if num is None:
                    reason = "non_number"
                elif not math.isfinite(num) or abs((num - self.offset[i]) / self.scale[i]) > FLOAT32_MAX:
                    reason = "non_finite"  # also what float32 cannot hold once scaled: it would be inf
                elif not self.lo[i] <= num <= self.hi[i]:
                    reason = "out_of_range"
            if not reason and num is not None:
                out.append(num)
                continue
            if reason not in reasons:
                reasons.append(reason)
            policy = getattr(p, reason)
            if policy == "keep" and num is not None:
                flags.append(f"{reason}:{f}")
                out.append(num)
                continue
            if policy in ("skip", "reset"):
                flags.append(f"{reason}:{f}")
                reset = reset or policy == "reset"
                return Verdict(None, flags, reasons, reset=reset)
            held = last_good is not None and policy == "hold" and math.isfinite(last_good[i])
            out.append(float(last_good[i]) if held and last_good is not None else self.mean[i])
            substituted.add(i)
            flags.append(f"{'held' if held else 'imputed'}:{f}")
        return Verdict(out, flags, reasons, substituted=frozenset(substituted))


def _as_list(reading: Any) -> list[Any]:
    return reading.tolist() if isinstance(reading, np.ndarray) else list(reading)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    try:
        if isinstance(v, (int, float, np.integer, np.floating)):
            return float(v)
        if isinstance(v, str):
            return float(v)
    except ValueError:
        return None
    except OverflowError:  # an integer of 400 digits: a number, but no float holds it
        return math.inf if v > 0 else -math.inf
    return None
