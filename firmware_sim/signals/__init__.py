"""Seeded sensor signals with ground truth, and the training CSVs made from them.

    imu          6-axis IMU through idle / walk / run / stairs        truth: activity label
    vibration    bearing vibration features, healthy -> failing      truth: anomalous from the fault onset
    temperature  cold-room cycles, sensor drift, door excursions     truth: anomalous during excursions

The simulator streams them to its devices; `imu_dataset` (and its siblings) write the same signals in the
trainer's long format (`t, device, <features...>, <label>`), so a user trains on what the fleet will see:

    df = imu_dataset(devices=8, duration_s=600, rate=25)
    to_csv(df, "imu.csv")            # edgernn train --data imu.csv --time-column t --series-column device ...

Datasets draw from a different random stream than simulations with the same seed (`salt=1`): the simulator
never scores a model on the very readings it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.errors import ConfigError
from firmware_sim.signals.base import Signal, SignalChunk
from firmware_sim.signals.imu import ACTIVITIES, ImuSignal
from firmware_sim.signals.temperature import TemperatureSignal
from firmware_sim.signals.vibration import VibrationSignal

if TYPE_CHECKING:
    import pandas as pd

SIGNALS: dict[str, type[Signal]] = {
    "imu": ImuSignal,
    "vibration": VibrationSignal,
    "temperature": TemperatureSignal,
}
DATASET_SALT = 1

__all__ = [
    "ACTIVITIES",
    "SIGNALS",
    "ImuSignal",
    "Signal",
    "SignalChunk",
    "TemperatureSignal",
    "VibrationSignal",
    "dataset",
    "device_id",
    "imu_dataset",
    "make_signal",
    "temperature_dataset",
    "to_csv",
    "vibration_dataset",
]


def device_id(index: int) -> str:
    """The simulator's and the datasets' device names: dev0000, dev0001, ..."""
    return f"dev{index:04d}"


def signal_class(kind: str) -> type[Signal]:
    try:
        return SIGNALS[kind]
    except KeyError:
        raise ConfigError(f"unknown signal {kind!r}; allowed: {', '.join(SIGNALS)}") from None


def make_signal(
    kind: str, rate: float, seed: int = 0, index: int = 0, duration_s: float | None = None, **params: Any
) -> Signal:
    """One device's signal; `params` are the kind's own (e.g. `fault_fraction` for vibration)."""
    return signal_class(kind)(rate, seed, index, duration_s, **params)


def dataset(
    kind: str, devices: int = 8, duration_s: float = 600.0, rate: float = 25.0, seed: int = 0, **params: Any
) -> pd.DataFrame:
    """A training table in the trainer's long format: `t` (s), `device`, one column per channel, then truth.

    Label signals add the class name column (`activity` for imu); anomaly signals add `anomaly` (0/1) and
    `stage` (e.g. healthy / degrading / failing).
    """
    import pandas as pd

    if devices < 1:
        raise ConfigError(f"devices must be >= 1, got {devices!r}")
    if not duration_s > 0:
        raise ConfigError(f"duration_s must be > 0, got {duration_s!r}")
    cls = signal_class(kind)
    n = round(duration_s * rate)
    frames = []
    for i in range(devices):
        sig = cls(rate, seed, i, duration_s, salt=DATASET_SALT, **params)
        chunk = sig.read(n)
        cols: dict[str, Any] = {"t": np.round(np.arange(n) * sig.dt, 6), "device": device_id(i)}
        cols.update({name: chunk.x[:, j] for j, name in enumerate(cls.channels)})
        if cls.truth_kind == "label":
            cols[_label_column(cls)] = np.asarray(cls.labels)[chunk.truth]
        else:
            cols["anomaly"] = chunk.truth.astype(np.int8)
            cols["stage"] = np.asarray(cls.stages)[chunk.stage]
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def _label_column(cls: type[Signal]) -> str:
    return "activity" if cls.kind == "imu" else "label"


def imu_dataset(
    devices: int = 8, duration_s: float = 600.0, rate: float = 25.0, seed: int = 0, **params: Any
) -> pd.DataFrame:
    """Columns t, device, ax, ay, az, gx, gy, gz, activity (idle | walk | run | stairs)."""
    return dataset("imu", devices, duration_s, rate, seed, **params)


def vibration_dataset(
    devices: int = 8, duration_s: float = 3600.0, rate: float = 10.0, seed: int = 0, **params: Any
) -> pd.DataFrame:
    """Columns t, device, rms, peak, kurtosis, bpfo, temp, anomaly, stage. `fault_fraction=0` for healthy only."""
    return dataset("vibration", devices, duration_s, rate, seed, **params)


def temperature_dataset(
    devices: int = 8, duration_s: float = 3600.0, rate: float = 1.0, seed: int = 0, **params: Any
) -> pd.DataFrame:
    """Columns t, device, temp, humidity, power, anomaly, stage."""
    return dataset("temperature", devices, duration_s, rate, seed, **params)


def to_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a dataset as the CSV `edgernn train --data` reads; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.6g")
    return path
