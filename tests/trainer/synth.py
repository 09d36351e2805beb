"""Synthetic data made in the tests (no downloads): importable by every package's tests.

motion_frame      3-class IMU-like activity (idle / walk / run) in long format, several devices
periodic_frame    a noisy periodic signal (two harmonics) for forecasting
spikes_frame      a periodic signal with injected spikes and a 0/1 `anomaly` column
motion_arrays     independent labelled sequences (N, T, C) or a list of unequal-length (T_i, C)
sentiment_tokens  labelled word sequences (the seed's sentiment LSTM, tiny)
recordings_frame  labelled recordings of unequal length in long format, one label each, sorted by class
TEXT              a short text for a character model
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ACTIVITIES = ("idle", "walk", "run")
RATE = 50.0  # readings per second
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _activity_signal(activity: str, n: int, rng: np.random.Generator, phase: float) -> np.ndarray:
    """(n, 6) accelerometer + gyroscope readings for one activity bout."""
    t = phase + np.arange(n) / RATE
    freq, amp = {"idle": (0.0, 0.0), "walk": (1.8, 1.0), "run": (3.2, 2.2)}[activity]
    base = np.zeros((n, 6))
    if freq:
        w = 2 * np.pi * freq * t
        base[:, 0] = amp * np.sin(w)
        base[:, 1] = 0.3 * amp * np.sin(2 * w + 0.5)
        base[:, 3] = 0.8 * amp * np.cos(w)
        base[:, 5] = 0.4 * amp * np.sin(w + 1.0)
    base[:, 2] = 9.81 + (0.5 * amp * np.abs(np.sin(np.pi * freq * t)) if freq else 0.0)
    return base + rng.normal(0, 0.15, size=(n, 6))


def motion_frame(
    devices: int = 3, readings: int = 3000, bout: tuple[int, int] = (120, 260), seed: int = 0
) -> pd.DataFrame:
    """Columns t, device, ax, ay, az, gx, gy, gz, activity; each device cycles through all activities."""
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(devices):
        rows, labels, total = [], [], 0
        order = list(ACTIVITIES)
        while total < readings:
            rng.shuffle(order)
            for act in order:
                n = int(rng.integers(*bout))
                rows.append(_activity_signal(act, n, rng, total / RATE))
                labels += [act] * n
                total += n
        x = np.concatenate(rows)[:readings]
        f = pd.DataFrame(x, columns=["ax", "ay", "az", "gx", "gy", "gz"])
        f.insert(0, "device", f"dev{d}")
        f.insert(0, "t", 1_700_000_000.0 + np.arange(readings) / RATE)
        f["activity"] = labels[:readings]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def periodic_frame(readings: int = 4000, noise: float = 0.1, period: float = 40.0, seed: int = 0) -> pd.DataFrame:
    """Columns t, temp, load: `temp` is two harmonics plus noise; `load` a slower, related signal."""
    rng = np.random.default_rng(seed)
    i = np.arange(readings)
    w = 2 * np.pi * i / period
    temp = np.sin(w) + 0.5 * np.sin(2 * w + 0.3) + rng.normal(0, noise, readings)
    load = 0.6 * np.cos(w / 2) + rng.normal(0, noise, readings)
    return pd.DataFrame({"t": i / RATE, "temp": 20 + 3 * temp, "load": load})


def spikes_frame(readings: int = 4000, rate: float = 0.01, size: float = 2.5, seed: int = 0) -> pd.DataFrame:
    """A periodic signal with spikes of +-`size` (raw units, ~8 noise std) at `rate` of readings."""
    f = periodic_frame(readings, noise=0.1, seed=seed)
    rng = np.random.default_rng(seed + 1)
    spikes = rng.random(readings) < rate
    spikes[:5] = False
    f.loc[spikes, "temp"] += size * rng.choice([-1.0, 1.0], size=int(spikes.sum()))
    f["anomaly"] = spikes.astype(int)
    return f


def motion_arrays(
    n: int = 240, length: int = 40, unequal: bool = False, seed: int = 0
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    """Independent sequences of 3 channels; label = which activity (0 idle, 1 walk, 2 run)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        label = int(rng.integers(0, 3))
        t = length if not unequal else int(rng.integers(length // 2, length + 1))
        x = _activity_signal(ACTIVITIES[label], t, rng, float(rng.random() * 10))[:, [0, 2, 3]]
        xs.append(x.astype(np.float32))
        ys.append(label)
    y = np.array(ys)
    return (xs if unequal else np.stack(xs)), y


POSITIVE = ("good", "great", "fine", "lovely", "superb")
NEGATIVE = ("bad", "awful", "poor", "dull", "boring")
NEUTRAL = ("the", "film", "was", "a", "plot", "and", "acting", "story", "it", "really")


def sentiment_tokens(n: int = 240, seed: int = 0) -> tuple[list[list[str]], list[str]]:
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for _ in range(n):
        pos = bool(rng.random() < 0.5)
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(4, 9))))
        cue = POSITIVE if pos else NEGATIVE
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cue)))
        seqs.append([str(w) for w in words])
        labels.append("pos" if pos else "neg")
    return seqs, labels


def recordings_frame(per_class: int = 12, lengths: tuple[int, int] = (4, 40), seed: int = 0) -> pd.DataFrame:
    """Long format, sorted by class as such files often are: rec, t, ax, az, gx, activity (one per rec)."""
    rng = np.random.default_rng(seed)
    frames: list[pd.DataFrame] = []
    for activity in ACTIVITIES:
        for _ in range(per_class):
            n = int(rng.integers(*lengths))
            x = _activity_signal(activity, n, rng, float(rng.random() * 10))[:, [0, 2, 3]]
            f = pd.DataFrame(x, columns=["ax", "az", "gx"])
            f.insert(0, "t", np.arange(n) / RATE)
            f.insert(0, "rec", f"r{len(frames):03d}")
            f["activity"] = activity
            frames.append(f)
    return pd.concat(frames, ignore_index=True)
