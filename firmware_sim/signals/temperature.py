"""A cold room: compressor temperature cycles, sensor drift, and door-open excursions.

    temp      air temperature, degrees C (as the drifting sensor reports it)
    humidity  relative humidity, %
    power     compressor power, W

The thermostat holds a setpoint (about 4 C) with a 1 C hysteresis band: the room warms while the compressor
is off and is pulled down while it runs, a sawtooth of a few minutes per cycle. The temperature sensor drifts
slowly (`drift_per_h`, sign per device): a calibration problem, not an event, so it is not anomalous.
Excursions: a door left open (every `excursion_every_s` on average, default 30 min; open for 0.5-3 minutes)
lets the room warm toward the corridor's temperature, humidity rises and the compressor runs flat out; after
the door closes the room is pulled back down. Ground truth: anomalous from the door opening until the room
is back within 0.5 C of its cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_sim.signals.base import Signal, SignalChunk, first_order_lag, param, reject_unknown

STAGES = ("normal", "excursion")
_PARAMS = ("excursion_every_s", "drift_per_h", "noise")
_CORRIDOR_C = 20.0
_RECOVERED_C = 0.5  # an excursion ends when the room is back within this of its cycle


class TemperatureSignal(Signal):
    kind = "temperature"
    channels = ("temp", "humidity", "power")
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
        self.every_s = param(p, "excursion_every_s", 1800.0, low=1.0, kind=self.kind)
        drift = param(p, "drift_per_h", 0.3, kind=self.kind)
        self.noise = param(p, "noise", 1.0, kind=self.kind)
        reject_unknown(p, self.kind, _PARAMS)
        rng = self.rng
        self.setpoint = float(rng.normal(4.0, 0.5))
        self._warm_s = float(rng.uniform(200, 280))  # compressor off: the room warms by the band
        self._cool_s = float(rng.uniform(100, 140))  # compressor on: pulled back down
        self._cycle_offset = float(rng.uniform(0, self._warm_s + self._cool_s))
        self._drift = drift * float(rng.choice((-1.0, 1.0))) / 3600.0  # degrees per second
        self._door_open = False
        self._next_event = float(rng.exponential(self.every_s))
        self._offset = 0.0  # how far an excursion has pushed the room above its cycle, C
        self._humid = 0.0

    def _cycle(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Thermostat sawtooth: temperature (n,) and compressor on (n,) bool."""
        period = self._warm_s + self._cool_s
        c = (t + self._cycle_offset) % period
        lo = self.setpoint - 0.5
        warming = c < self._warm_s
        temp = np.where(warming, lo + c / self._warm_s, lo + 1.0 - (c - self._warm_s) / self._cool_s)
        return temp, ~warming

    def _generate(self, times: np.ndarray) -> SignalChunk:
        n = len(times)
        rng = self.rng
        base, compressor = self._cycle(times)
        offset = np.empty(n)
        door = np.zeros(n, bool)
        i = 0
        while i < n:
            while times[i] >= self._next_event:
                self._door_open = not self._door_open
                gap = rng.uniform(30, 180) if self._door_open else rng.exponential(self.every_s)
                self._next_event += float(gap)
            j = i + int(np.searchsorted(times[i:], self._next_event))
            if self._door_open:  # toward the corridor's temperature, time constant 5 min
                target = np.full(j - i, _CORRIDOR_C) - base[i:j]
                offset[i:j] = first_order_lag(target, self._offset, 1 - np.exp(-self.dt / 300.0))
                door[i:j] = True
            else:  # pulled down with a 2 min time constant
                offset[i:j] = first_order_lag(np.zeros(j - i), self._offset, 1 - np.exp(-self.dt / 120.0))
            self._offset = float(offset[j - 1])
            i = j
        anomalous = door | (offset > _RECOVERED_C)
        humid = first_order_lag(np.where(door, 12.0, 0.0), self._humid, 1 - np.exp(-self.dt / 60.0))
        self._humid = float(humid[-1])
        running = compressor | anomalous  # the compressor runs flat out until the room recovers

        z = self.noise_rng.standard_normal((n, 3)) * self.noise  # (n, 3): one row per reading
        temp = base + offset + self._drift * times + 0.05 * z[:, 0]
        humidity = 80.0 + humid - 3.0 * running + 0.5 * z[:, 1]
        power = np.maximum(np.where(running, 800.0, 5.0) + 10.0 * z[:, 2], 0.0)
        x = np.stack([temp, humidity, power], axis=1).astype(np.float32)  # (n, 3)
        truth = anomalous.astype(np.int64)
        return SignalChunk(x=x, truth=truth, stage=truth.copy())
