"""A wrist/hip IMU: 3-axis accelerometer (m/s^2) and gyroscope (rad/s) through activities with transitions.

Each activity has a step cadence, an amplitude, a body tilt and harmonics that a recurrent model can
pick up from one to two seconds of readings at 10-50 Hz:

    idle     no cadence, gravity only, sensor noise
    walk     ~1.9 steps/s, ~3 m/s^2 vertical, slight forward tilt
    run      ~2.8 steps/s, ~9 m/s^2 vertical with a sharp impact harmonic, more tilt
    stairs   ~1.5 steps/s, ~4 m/s^2 vertical, strong forward lean (gravity shifts from z to x)

Activities last 10-40 s (uniform) and follow a transition matrix (run is entered from walk or idle,
stairs from walk or idle). Cadence and amplitude cross-fade over `fade_s` at each change; the ground-truth
label switches at the boundary, so the first second after a change is genuinely ambiguous. Each device has
its own cadence and amplitude (people differ) and a mounting rotation of up to ~10 degrees per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_sim.signals.base import Signal, SignalChunk, param, reject_unknown

GRAVITY = 9.81
ACTIVITIES = ("idle", "walk", "run", "stairs")


@dataclass(frozen=True)
class _Style:
    cadence: float  # steps per second
    vertical: float  # m/s^2 amplitude along the body's vertical axis
    forward: float
    lateral: float
    gyro: float  # rad/s amplitude of the pitch swing
    tilt_deg: float  # forward lean: gravity moves from z to x
    harmonic: float  # relative amplitude of the second harmonic (heel strike sharpness)


STYLES = (
    _Style(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    _Style(1.9, 2.8, 1.5, 0.9, 0.7, 8.0, 0.35),
    _Style(2.8, 9.0, 3.5, 2.0, 2.0, 15.0, 0.6),
    _Style(1.5, 4.0, 1.5, 1.0, 1.1, 25.0, 0.2),
)
# rows: from; columns: to (idle, walk, run, stairs); the diagonal is zero: a segment always changes activity
TRANSITIONS = np.array(
    [
        [0.0, 0.7, 0.15, 0.15],
        [0.4, 0.0, 0.3, 0.3],
        [0.3, 0.7, 0.0, 0.0],
        [0.3, 0.7, 0.0, 0.0],
    ]
)
_PARAMS = ("min_segment_s", "max_segment_s", "fade_s", "noise")


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A small random rotation (3, 3): how the sensor sits on this device's wearer."""
    a, b, c = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


class ImuSignal(Signal):
    kind = "imu"
    channels = ("ax", "ay", "az", "gx", "gy", "gz")
    truth_kind = "label"
    labels = ACTIVITIES
    stages = ACTIVITIES

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
        self.min_segment_s = param(p, "min_segment_s", 10.0, low=0.1, kind=self.kind)
        self.max_segment_s = max(self.min_segment_s, param(p, "max_segment_s", 40.0, low=0.1, kind=self.kind))
        self.fade_s = param(p, "fade_s", 1.0, kind=self.kind)
        self.noise = param(p, "noise", 1.0, kind=self.kind)  # multiplies the sensor noise
        reject_unknown(p, self.kind, _PARAMS)
        rng = self.rng
        self._cadence_k = rng.normal(1.0, 0.06)  # this wearer's pace
        self._amp_k = rng.normal(1.0, 0.1)
        self._mount = _rotation(rng, 10.0)  # (3, 3)
        self._activity = int(rng.integers(len(ACTIVITIES)))
        self._prev = self._activity
        self._switch_t = -1e9  # no fade at the start
        self._seg_end = self._segment_length()
        self._seg_k = (1.0, 1.0)  # per-segment cadence and amplitude variation
        self._phase = float(rng.uniform(0, 2 * np.pi))

    def _segment_length(self) -> float:
        return float(self.rng.uniform(self.min_segment_s, self.max_segment_s))

    def _next_segment(self, start: float) -> None:
        self._prev = self._activity
        self._activity = int(self.rng.choice(len(ACTIVITIES), p=TRANSITIONS[self._activity]))
        self._switch_t = start
        self._seg_end = start + self._segment_length()
        self._seg_k = (float(self.rng.normal(1.0, 0.04)), float(self.rng.normal(1.0, 0.08)))

    def _generate(self, times: np.ndarray) -> SignalChunk:
        n = len(times)
        x = np.empty((n, 6), np.float32)
        truth = np.empty(n, np.int64)
        i = 0
        while i < n:
            while times[i] >= self._seg_end:
                self._next_segment(self._seg_end)
            j = i + int(np.searchsorted(times[i:], self._seg_end))  # first sample of the next segment
            x[i:j] = self._segment_readings(times[i:j])
            truth[i:j] = self._activity
            i = j
        return SignalChunk(x=x, truth=truth, stage=truth.copy())

    def _segment_readings(self, t: np.ndarray) -> np.ndarray:
        """Readings (m, 6) for times `t` (m,) inside the current segment."""
        m = len(t)
        cur, prev = STYLES[self._activity], STYLES[self._prev]
        w = np.clip((t - self._switch_t) / self.fade_s, 0.0, 1.0) if self.fade_s > 0 else np.ones(m)  # (m,)

        def blend(name: str) -> np.ndarray:
            return (1 - w) * getattr(prev, name) + w * getattr(cur, name)

        ck, ak = self._cadence_k * self._seg_k[0], self._amp_k * self._seg_k[1]
        cadence = blend("cadence") * ck  # (m,)
        phase = self._phase + 2 * np.pi * np.cumsum(cadence * self.dt)  # continuous across segments
        self._phase = float(phase[-1] % (4 * np.pi))  # 4 pi: the stride terms use phase / 2
        vert, fwd, lat = blend("vertical") * ak, blend("forward") * ak, blend("lateral") * ak
        gyro, harm = blend("gyro") * ak, blend("harmonic")
        tilt = np.deg2rad(blend("tilt_deg"))

        acc = np.empty((m, 3))
        acc[:, 0] = -GRAVITY * np.sin(tilt) + fwd * np.sin(phase + np.pi / 2 + 0.3)
        acc[:, 1] = lat * np.sin(phase / 2)  # sway at stride frequency: one stride is two steps
        acc[:, 2] = GRAVITY * np.cos(tilt) + vert * (np.sin(phase) + harm * np.sin(2 * phase + 0.6))
        gyr = np.empty((m, 3))
        gyr[:, 0] = 0.5 * gyro * np.sin(phase / 2 + 0.4)
        gyr[:, 1] = gyro * np.sin(phase + 1.0)
        gyr[:, 2] = 0.3 * gyro * np.sin(phase / 2 + 1.3)
        noise = self.noise_rng.standard_normal((m, 6)) * self.noise  # (m, 6): one row per reading
        return np.concatenate([acc @ self._mount.T + 0.12 * noise[:, :3], gyr @ self._mount.T + 0.03 * noise[:, 3:]], 1)
