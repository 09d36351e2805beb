"""Per-reading latency on a device profile: the host's measured step time, scaled, with jitter.

The host time is measured the way the device runs: one reading at a time (`step_one`, batch 1) through the
real Predictor with the fleet's own bundle and artifact, on readings from the fleet's signal; the value is
the runtime's own `latency_us` (validate + scale + step + postprocess). The median of a few hundred steps,
after a warm-up, is robust to the other work on the host; the device's spread is the profile's:

    latency = host_median * factor * LogNormal(0, jitter) + Exponential(hiccup_ms) with probability hiccup_rate
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_sim.profiles import DeviceProfile


@dataclass(frozen=True)
class HostTiming:
    median_us: float
    p90_us: float
    samples: int

    def to_dict(self) -> dict[str, float]:
        return {"median_us": self.median_us, "p90_us": self.p90_us, "samples": self.samples}


def measure_host(
    step: Callable[[np.ndarray, float], float | None], readings: np.ndarray, warmup: int = 20
) -> HostTiming:
    """Median and p90 of `step(reading, t) -> latency_us` over `readings` (n, C), after `warmup` steps."""
    times = []
    for i, row in enumerate(readings):
        us = step(row, float(i))
        if us is not None and i >= warmup:
            times.append(us)
    if not times:
        raise RuntimeError("no reading made a prediction while measuring the host's step time")
    a = np.asarray(times)
    return HostTiming(float(np.median(a)), float(np.percentile(a, 90)), len(a))


class LatencyModel:
    """Draws modelled device latencies (microseconds) for a profile, from its own seeded generator."""

    def __init__(self, profile: DeviceProfile, host: HostTiming, host_score: float, rng: np.random.Generator) -> None:
        self.profile = profile
        self.host = host
        self.factor = profile.factor(host_score)
        self.median_us = host.median_us * self.factor
        # one stream per kind of draw: n readings drawn at once get what n drawn one tick at a time get
        self._jitter, self._hiccup, self._hiccup_us = rng.spawn(3)

    def sample(self, n: int) -> np.ndarray:
        """(n,) latencies in microseconds, to 0.01 µs (a modelled figure: more digits would be noise, and each
        costs its device's payload and its formatting)."""
        p = self.profile
        lat = self.median_us * self._jitter.lognormal(0.0, p.jitter, n)
        hiccup = self._hiccup.random(n) < p.hiccup_rate
        if hiccup.any():
            lat[hiccup] += self._hiccup_us.exponential(p.hiccup_ms * 1e3, int(hiccup.sum()))
        return np.round(lat, 2)
