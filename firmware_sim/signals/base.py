"""The signal-model interface: a seeded sensor stream for one device, with its ground truth.

A signal is generated on a uniform sample grid at `rate` readings per second, in chunks, so a device
can read a few seconds ahead without holding its whole run in memory. The stream of device `index` is a
function of `(seed, index)` alone: the same device produces the same readings whatever the fleet size
or chunking, which keeps runs reproducible and comparable.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgernn.errors import ConfigError


@dataclass
class SignalChunk:
    """`n` consecutive readings: x (n, C) float32 in `channels` order; truth (n,) int.

    truth is the class index into `labels` for label signals, or 1 (anomalous) / 0 for anomaly signals.
    stage (n,) int: the index into `stages` of the signal's own phase (e.g. healthy / degrading / failing).
    target (n, T) float, or None: the true value of each forecast target at these readings, where the signal
    knows it apart from its channels (a replayed file's target columns); NaN where unknown.
    """

    x: np.ndarray
    truth: np.ndarray
    stage: np.ndarray
    target: np.ndarray | None = None


class Signal(ABC):
    """One device's sensor stream. Subclasses generate `read(n)` from their own seeded generator."""

    kind: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    truth_kind: ClassVar[str]  # "label" (classify) | "anomaly"
    labels: ClassVar[tuple[str, ...]] = ()  # label signals: class names, index = truth value
    stages: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, rate: float, seed: int = 0, index: int = 0, duration_s: float | None = None, *, salt: int = 0
    ) -> None:
        """`salt` separates uses of one seed: the training datasets use 1, so a model is never scored in the
        simulator on the very stream it was trained on."""
        if not rate > 0:
            raise ConfigError(f"sample rate must be > 0 readings per second, got {rate!r}")
        self.rate = float(rate)
        self.dt = 1.0 / self.rate
        self.index = index
        self.duration_s = duration_s  # the planned run length, where the signal places events by it
        kind_id = zlib.crc32(self.kind.encode())
        events, noise = np.random.SeedSequence([int(seed), int(index), kind_id, int(salt)]).spawn(2)
        # two streams, so that the readings do not depend on how the run is cut into chunks: `rng` draws
        # events (segments, onsets) in time order; `noise_rng` draws one row of sensor noise per reading
        self.rng = np.random.default_rng(events)
        self.noise_rng = np.random.default_rng(noise)
        self.n = 0  # readings generated so far

    @property
    def t(self) -> float:
        """Signal time of the next reading, seconds since the start."""
        return self.n * self.dt

    def read(self, n: int) -> SignalChunk:
        """The next `n` readings."""
        times = (self.n + np.arange(n)) * self.dt  # (n,)
        chunk = self._generate(times)
        self.n += n
        return chunk

    @abstractmethod
    def _generate(self, times: np.ndarray) -> SignalChunk:
        """Readings at `times` (n,), seconds since the start; always called with consecutive times."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "channels": list(self.channels), "rate": self.rate, "truth": self.truth_kind}


def param(params: dict[str, Any], name: str, default: float, *, low: float = 0.0, kind: str = "") -> float:
    """A non-negative numeric signal parameter, or a ConfigError naming it."""
    value = params.pop(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= low:
        raise ConfigError(f"signal {kind!r}: {name} must be a number >= {low:g}, got {value!r}")
    return float(value)


def reject_unknown(params: dict[str, Any], kind: str, known: tuple[str, ...]) -> None:
    if params:
        raise ConfigError(
            f"signal {kind!r}: unknown parameters {sorted(params)}; allowed: {', '.join(known) or 'none'}"
        )


def first_order_lag(u: np.ndarray, y0: float, alpha: float) -> np.ndarray:
    """`y[k] = y[k-1] + alpha * (u[k] - y[k-1])`, y[-1] = y0, vectorised: y (n,) for u (n,).

    Closed form `y[k] = r^(k+1) * (y0 + alpha * sum_j<=k u[j] r^-(j+1))` with r = 1 - alpha, in blocks
    short enough that r^-k stays far from overflow.
    """
    r = 1.0 - alpha
    out = np.empty(len(u))
    block = max(1, int(20.0 / max(alpha, 1e-12)))
    for s in range(0, len(u), block):
        seg = u[s : s + block]
        powers = r ** np.arange(1, len(seg) + 1)  # (m,) r^(k+1)
        out[s : s + len(seg)] = powers * (y0 + alpha * np.cumsum(seg / powers))
        y0 = float(out[s + len(seg) - 1])
    return out
