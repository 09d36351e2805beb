"""Applies a fleet's device faults to each tick's readings and timestamps (vectorised over the fleet).

Network faults (broker outage, slow network) belong to the broker side, reboots to the fleet (they touch
the runtime and the publisher); this module changes only what the sensors deliver and when the clocks say
it was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_sim.faults import FaultSpec

SENSOR_FAULTS = ("stuck", "nan-burst", "spike")  # faults that change the values a device reads


@dataclass
class DeviceFault:
    spec: FaultSpec
    devices: np.ndarray  # (k,) fleet-local device indices
    started: bool = False
    ended: bool = False
    channels: np.ndarray | None = None  # nan-burst: (k, F) bool, which channels go NaN per device
    stuck: np.ndarray | None = None  # stuck: (k, F) the readings held
    extra: dict[str, float] = field(default_factory=dict)


class Injector:
    def __init__(self, faults: list[DeviceFault], n_features: int, spans: np.ndarray, rng: np.random.Generator):
        self.faults = [f for f in faults if f.spec.kind != "reboot"]
        self.reboots = [f for f in faults if f.spec.kind == "reboot"]
        self.n_features = n_features
        self.spans = spans  # (F,) training range width per feature, raw units
        self.rng = rng
        self.injected: dict[str, int] = {}  # fault kind -> readings it touched
        # (D,) time each device's readings last held a wrong value (a sensor fault), -inf: never; an anomaly
        # model rightly alarms on those, so the report does not count such an alarm as false
        self.sensor_t: np.ndarray | None = None

    def apply(
        self, t: float, x: np.ndarray, times: np.ndarray, sampled: np.ndarray, clock: np.ndarray
    ) -> np.ndarray | None:
        """Change this tick's readings in place: x (D, F) float64, times (D,), sampled (D,) bool; `clock` (D,)
        is each device's persistent clock offset (clock-gap adds to it). Returns (D,) bool of the readings a
        fault touched, or None when no fault is active."""
        touched: np.ndarray | None = None
        if self.sensor_t is None:
            self.sensor_t = np.full(len(x), -np.inf)
        for f in self.faults:
            spec = f.spec
            if f.ended or t < spec.at:
                continue
            d = f.devices
            if spec.kind == "clock-gap":  # an instant step of the device clock: it stays stepped
                clock[d] += float(spec.params["step"])
                f.started = f.ended = True
                touched = _mark(touched, len(x), d)
                self._count(spec.kind, len(d))
                continue
            if t >= spec.end:
                f.ended = True
                continue
            if not f.started:
                self._start(f, x)
            if spec.kind == "dropout":
                sampled[d] = False
            elif spec.kind == "nan-burst":
                assert f.channels is not None
                rows = x[d]
                rows[f.channels] = np.nan
                x[d] = rows
            elif spec.kind == "stuck":
                assert f.stuck is not None
                x[d] = f.stuck
            elif spec.kind == "spike":
                hit = d[self.rng.random(len(d)) < float(spec.params["rate"])]
                if len(hit):
                    ch = self.rng.integers(self.n_features, size=len(hit))
                    sign = self.rng.choice((-1.0, 1.0), size=len(hit))
                    x[hit, ch] += sign * float(spec.params["size"]) * self.spans[ch]
                d = hit
            elif spec.kind == "clock-jitter":
                times[d] += self.rng.normal(0.0, float(spec.params["sigma_ms"]) / 1000.0, len(d))
            touched = _mark(touched, len(x), d)
            self._count(spec.kind, len(d))
            if spec.kind in SENSOR_FAULTS:
                self.sensor_t[d] = t
        return touched

    def sensor_fault(self, dev: np.ndarray, t: float | np.ndarray, within_s: float) -> np.ndarray:
        """(M,) bool: device `dev` (M,) held a wrong value (stuck, NaN, spike) at most `within_s` before t."""
        if self.sensor_t is None:
            return np.zeros(len(dev), bool)
        return np.asarray(t) - self.sensor_t[dev] <= within_s

    def _start(self, f: DeviceFault, x: np.ndarray) -> None:
        f.started = True
        k = len(f.devices)
        if f.spec.kind == "nan-burst":
            n = (
                self.n_features
                if f.spec.params["channels"] == "all"
                else min(int(f.spec.params["channels"]), self.n_features)
            )
            order = np.argsort(self.rng.random((k, self.n_features)), axis=1)  # a random channel order per device
            f.channels = order < n  # (k, F): the first n of each device's order
        elif f.spec.kind == "stuck":
            f.stuck = x[f.devices].copy()

    def _count(self, kind: str, n: int) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + n


def _mark(touched: np.ndarray | None, n: int, d: np.ndarray) -> np.ndarray:
    if touched is None:
        touched = np.zeros(n, bool)
    touched[d] = True
    return touched
