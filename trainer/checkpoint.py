"""The checkpoint a training run writes, and how it is read back.

A run directory holds:
    checkpoint.pt   dict below; loads with `torch.load(path, weights_only=True)` (no pickled classes)
    heldout.npz     capped held-out streams from the test split, raw units (see `Heldout`)
    curve.png       training and validation loss per epoch
    summary.json    the printed summary, machine-readable

Checkpoint dict (plain containers and tensors only):
    format      CHECKPOINT_FORMAT
    config      ModelConfig.to_dict()
    state_dict  the model's weights
    data        DataSpec as a dict: features, scaler, ranges, labels, targets, vocabulary, sample rate
    head        task settings, keyed like the manifest's `output`:
                  forecast: {"interval": {"level": 0.9, "half_width": [O floats, raw units]}}
                  anomaly:  {"anomaly": {"threshold", "false_alarm_rate", "score": "forecast-residual",
                             "sigma": [n_targets floats, raw units]}}
                  classify / generate: {}
    metrics     test-split metrics: "streaming" (one reading at a time, state carried, over heldout.npz;
                the figures a device reproduces) and "windowed" (as trained, over the whole test split)
    training    how it was trained: mode (windows | stateful), window, chunk, epochs, warmup (readings
                after a reset whose outputs are not scored), device mode ("stream" | "window"), ...
    provenance  data sha256, split bounds, seed, library versions
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.errors import DataError

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"
HELDOUT_FILE = "heldout.npz"


@dataclass
class Scaler:
    """`x_scaled = (x - offset) / scale`, per feature. standard: mean/std; minmax: min/(max - min)."""

    kind: str  # "standard" | "minmax" | "none"
    offset: list[float]
    scale: list[float]

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.offset, np.float32)) / np.asarray(self.scale, np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return x * np.asarray(self.scale, np.float32) + np.asarray(self.offset, np.float32)


@dataclass
class DataSpec:
    """Everything needed to turn a raw reading into model input and a model output into a prediction."""

    features: list[str]  # input feature names, in model order (["token"] for token models)
    scaler: Scaler  # fit on the training split only
    ranges: dict[str, list[float]]  # {"min": [...], "max": [...]} per feature, seen in training (raw)
    sample_rate: float | None = None  # readings per second, from the time column when known
    labels: list[str] = field(default_factory=list)  # classify: class names, index = class id
    targets: list[str] = field(default_factory=list)  # forecast / anomaly: predicted feature names
    target_scaler: Scaler | None = None  # inverse scaling of forecast outputs back to raw units
    vocabulary: list[str] = field(default_factory=list)  # token models: token strings, index = id
    # forecast / anomaly: "level" (outputs are the scaled targets) or "delta" (outputs are the scaled change
    # of each target from its latest reading, which the device adds back; targets must be input features)
    target_mode: str = "level"

    def level_index(self) -> list[int]:
        """Input column of each target (delta mode adds that reading back to the forecast change)."""
        return [self.features.index(t) for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        d = dict(d)
        d["scaler"] = Scaler(**d["scaler"])
        if d.get("target_scaler") is not None:
            d["target_scaler"] = Scaler(**d["target_scaler"])
        return cls(**d)


@dataclass
class Heldout:
    """Held-out test streams in raw units, stepped one reading at a time by whoever measures quality.

    x        (S, L, C) float32 readings, or (S, L) int64 tokens
    y        classify/generate: (S, L) int64 label or next token for each reading (-1: no label);
             forecast/anomaly: (S, L, O) float32 raw-unit targets for each reading (NaN: not known)
    anomaly  (S, L) int8 ground truth for anomaly tasks (1: anomalous reading), else empty
    lengths  (S,) int64 readings of each stream when streams differ in length (the rest is padding:
             x zeros, y -1 / NaN); None when every stream fills all L readings
    context  forecast/anomaly: (S, Lc, n_targets) float32 raw target readings of the same series before
             each stream (train and validation, NaN-padded at the front), the history the baselines
             (`trainer.baselines`) forecast from; None when not kept

    Each stream is stepped from zero state (a device after a reset). Score outputs with
    `trainer.metrics.heldout_metrics`, which also skips the checkpoint's `training["warmup"]` readings.
    """

    x: np.ndarray
    y: np.ndarray
    anomaly: np.ndarray | None = None
    lengths: np.ndarray | None = None
    context: np.ndarray | None = None

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"x": self.x, "y": self.y}
        if self.anomaly is not None:
            arrays["anomaly"] = self.anomaly
        if self.lengths is not None:
            arrays["lengths"] = self.lengths
        if self.context is not None:
            arrays["context"] = self.context
        named: dict[str, Any] = arrays  # only these names (no allow_pickle flag: NumPy < 2.1 would store it)
        np.savez_compressed(path, **named)

    @classmethod
    def load(cls, path: Path) -> Heldout:
        with np.load(path, allow_pickle=False) as z:
            return cls(x=z["x"], y=z["y"], anomaly=z.get("anomaly"), lengths=z.get("lengths"), context=z.get("context"))

    def stream(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Stream i without its padding: x (L_i, C) or (L_i,), y (L_i, ...)."""
        n = int(self.lengths[i]) if self.lengths is not None else self.x.shape[1]
        return self.x[i, :n], self.y[i, :n]


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, Any]
    data: DataSpec
    head: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "state_dict": self.state_dict,
            "data": self.data.to_dict(),
            "head": self.head,
            "metrics": self.metrics,
            "training": self.training,
            "provenance": self.provenance,
        }

    def build_model(self) -> Any:
        """The trained `RecurrentModel`, in eval mode, on the CPU."""
        from trainer.model import build_model

        model = build_model(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt.to_dict(), tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file, or the `checkpoint.pt` inside a run directory; never unpickles classes."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise DataError(f"no checkpoint at {path} (a run directory holds {CHECKPOINT_FILE})")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path} is not an edgernn checkpoint: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT or "config" not in raw:
        raise DataError(f"{path} is not an edgernn checkpoint (format {CHECKPOINT_FORMAT} with a ModelConfig expected)")
    return Checkpoint(
        config=ModelConfig.from_dict(raw["config"]),
        state_dict=raw["state_dict"],
        data=DataSpec.from_dict(raw["data"]),
        head=raw.get("head", {}),
        metrics=raw.get("metrics", {}),
        training=raw.get("training", {}),
        provenance=raw.get("provenance", {}),
    )
