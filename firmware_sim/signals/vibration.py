"""Machine vibration with a developing rolling-bearing fault: healthy -> degrading -> failing.

A vibration sensor on a motor bearing samples at kHz and reports one summary per reading (the way
condition-monitoring nodes do), here at the scenario's rate:

    rms       overall vibration, g
    peak      largest absolute acceleration in the frame, g
    kurtosis  impulsiveness of the frame (3 for Gaussian vibration)
    bpfo      envelope-spectrum energy at the outer-race fault frequency, g
    temp      bearing housing temperature, degrees C

The machine runs a load profile (speed levels held for minutes, ramped between) and every feature
follows speed. A faulty device's bearing starts degrading at its onset: the fault-frequency energy and the
kurtosis rise first (small impacts as a spall forms), then in the failing stage overall vibration and
temperature climb quickly while kurtosis falls back (damage spreads around the race and the impacts
smear): the textbook progression. Ground truth: anomalous from the onset on.

Parameters: `fault_fraction` of devices develop a fault (default 0.5); onset uniformly in
[`onset_min`, `onset_max`] fractions of the run (default 0.3-0.6); `degrade_s` (default: a third of the run)
until failing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_sim.signals.base import Signal, SignalChunk, first_order_lag, param, reject_unknown

STAGES = ("healthy", "degrading", "failing")
_PARAMS = ("fault_fraction", "onset_min", "onset_max", "degrade_s", "noise")
_SPEEDS = (0.8, 1.0, 1.2)  # load levels, relative to nominal speed


class VibrationSignal(Signal):
    kind = "vibration"
    channels = ("rms", "peak", "kurtosis", "bpfo", "temp")
    truth_kind = "anomaly"
    stages = STAGES

    def __init__(
        self,
        rate: float,
        seed: int = 0,
        index: int = 0,
        duration_s: float | None = None,
        *,
        salt: int = 0,
        **params: Any,
    ) -> None:
        super().__init__(rate, seed, index, duration_s, salt=salt)
        p = dict(params)
        run = duration_s if duration_s else 3600.0
        frac = param(p, "fault_fraction", 0.5, kind=self.kind)
        lo = param(p, "onset_min", 0.3, kind=self.kind)
        hi = max(lo, param(p, "onset_max", 0.6, kind=self.kind))
        self.degrade_s = param(p, "degrade_s", run / 3, low=1e-3, kind=self.kind)
        self.noise = param(p, "noise", 1.0, kind=self.kind)
        reject_unknown(p, self.kind, _PARAMS)
        rng = self.rng
        self.faulty = bool(rng.uniform() < frac)
        self.onset_s: float | None = float(rng.uniform(lo, hi) * run) if self.faulty else None
        self._base = rng.normal(1.0, 0.08)  # machines differ in balance and mounting
        self._ambient = rng.normal(25.0, 2.0)
        self._speed = float(rng.choice(_SPEEDS))
        self._target = self._speed
        self._next_change = float(rng.uniform(60, 300))
        self._temp = self._ambient + 15.0 * self._speed  # start warm: the machine has been running

    def severity(self, t: np.ndarray) -> np.ndarray:
        """Fault severity (n,): 0 healthy, rising to 1 at the end of degrading, beyond 1 while failing."""
        if self.onset_s is None:
            return np.zeros_like(t)
        u = np.clip((t - self.onset_s) / self.degrade_s, 0.0, None)
        return np.where(u <= 1.0, u**2, 1.0 + 3.0 * (u - 1.0))

    def _speeds(self, times: np.ndarray) -> np.ndarray:
        """Speed (n,), relative to nominal: levels held 1-5 minutes, ramped with a 20 s time constant."""
        target = np.empty(len(times))
        i = 0
        while i < len(times):
            while times[i] >= self._next_change:
                self._target = float(self.rng.choice(_SPEEDS))
                self._next_change += float(self.rng.uniform(60, 300))
            j = i + int(np.searchsorted(times[i:], self._next_change))
            target[i:j] = self._target
            i = j
        speed = first_order_lag(target, self._speed, min(1.0, self.dt / 20.0))
        self._speed = float(speed[-1])
        return speed

    def _generate(self, times: np.ndarray) -> SignalChunk:
        n = len(times)
        z = self.noise_rng.standard_normal((n, 5)) * self.noise  # (n, 5): one row per reading
        speed = self._speeds(times)
        d = self.severity(times)
        degrading = np.minimum(d, 1.0)
        failing = np.maximum(d - 1.0, 0.0)

        rms = self._base * (0.2 + 0.15 * speed**2) + 0.08 * degrading + 0.5 * failing
        rms *= 1 + 0.04 * z[:, 0]
        # spall impacts raise kurtosis early; spreading damage smears them back toward Gaussian
        kurt = 3.0 + 5.0 * degrading / (1.0 + 2.0 * failing) + 0.15 * z[:, 1]
        peak = rms * (np.sqrt(np.maximum(kurt, 1.0)) * 1.7) * (1 + 0.05 * z[:, 2])
        bpfo = 0.02 * speed + 0.4 * degrading + 0.3 * failing + np.abs(0.01 * z[:, 3])

        # housing temperature: first-order lag (time constant 10 min) toward a speed- and fault-driven target
        target = self._ambient + 15.0 * speed + 3.0 * degrading + 8.0 * failing
        temp = first_order_lag(target, self._temp, 1.0 - np.exp(-self.dt / 600.0))
        self._temp = float(temp[-1])
        temp = temp + 0.1 * z[:, 4]

        x = np.stack([rms, peak, kurt, bpfo, temp], axis=1).astype(np.float32)  # (n, 5)
        stage = np.where(d <= 0, 0, np.where(d <= 1.0, 1, 2)).astype(np.int64)
        return SignalChunk(x=x, truth=(stage > 0).astype(np.int64), stage=stage)
