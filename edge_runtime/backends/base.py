"""The narrow interface every backend implements (httpx's `BaseTransport`, for recurrent steps).

Backends are pure: state goes in and comes out; a backend never keeps a stream's state itself.
Shapes: x (B, C) float32 scaled features, or (B,) int64 tokens; y (B, O) float32;
state: a tuple of float32 arrays, one per `ModelConfig.state_names`, each (layers * directions, B, H).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_runtime.bundle.manifest import Artifact, Manifest

State = tuple[np.ndarray, ...]


class Backend(ABC):
    name: ClassVar[str]  # "numpy" | "onnxruntime" | "tflite"
    #: fixed batch sizes the graph accepts; None when the batch axis is dynamic
    batch_sizes: tuple[int, ...] | None = None

    def __init__(self, manifest: Manifest, artifact: Artifact, path: Path) -> None:
        """`path` is the artifact's file inside the bundle (already checked against its sha256)."""
        self.manifest = manifest
        self.artifact = artifact
        self.path = path
        cfg = manifest.model
        self._state_shape = (cfg.num_layers * cfg.directions, cfg.hidden_size)

    @classmethod
    def available(cls) -> bool:
        """Whether this machine can run the backend (its library imports); must not be slow."""
        return True

    @property
    def precision(self) -> str:
        return self.artifact.precision

    def init_state(self, batch: int) -> State:
        """Zeros, the state after a reset: one (layers * directions, batch, hidden) array per tensor."""
        layers, hidden = self._state_shape
        return tuple(np.zeros((layers, batch, hidden), np.float32) for _ in self.manifest.model.state_names)

    @abstractmethod
    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One reading for each of B streams: x (B, C) -> y (B, O), and the new state."""

    def window(self, x: np.ndarray) -> np.ndarray:
        """Window mode (bidirectional bundles): x (B, T, C) -> y (B, O)."""
        raise NotImplementedError(f"the {self.name} backend does not run window-mode bundles")

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release interpreter sessions; the default holds nothing."""
