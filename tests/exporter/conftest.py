"""Session-scoped exported bundles: each model is trained (a second or two) and exported once.

TFLite conversion is the slow part (seconds per graph), so only the LSTM, GRU, bidirectional and token
bundles carry TFLite artifacts (five conversions in all); the rest are ONNX + NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from edge_runtime.bundle.manifest import Manifest
from exporter import export_bundle
from tests.exporter.factory import make_checkpoint
from trainer.checkpoint import Checkpoint, Heldout


@dataclass
class Exported:
    name: str
    path: Path
    manifest: Manifest
    ckpt: Checkpoint
    heldout: Heldout


# name -> (cell, task, layers, bidirectional, formats, tflite batches)
CONFIGS: dict[str, tuple[str, str, int, bool, str, tuple[int, ...]]] = {
    "rnn1-classify": ("rnn", "classify", 1, False, "onnx,numpy", (1,)),
    "rnn2-forecast": ("rnn", "forecast", 2, False, "onnx,numpy", (1,)),
    "lstm1-anomaly": ("lstm", "anomaly", 1, False, "onnx,numpy", (1,)),
    "lstm2-classify": ("lstm", "classify", 2, False, "onnx,tflite,numpy", (1, 4)),
    "gru1-forecast": ("gru", "forecast", 1, False, "onnx,tflite,numpy", (1,)),
    "gru2-classify": ("gru", "classify", 2, False, "onnx,numpy", (1,)),
    "lstm1-bidir": ("lstm", "classify", 1, True, "onnx,tflite,numpy", (1,)),
    "gru1-tokens": ("gru", "generate", 1, False, "onnx,tflite,numpy", (1,)),
}


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny recurrent models run fastest on one thread; on a shared CI machine more threads only
    oversubscribe the cores (measured: training one test model took 10 s on one thread, 124 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for name, (cell, task, layers, bidir, formats, batches) in CONFIGS.items():
        ckpt, heldout = make_checkpoint(
            cell, task, layers=layers, bidirectional=bidir, seed=1, ragged=name == "rnn2-forecast"
        )
        path = root / name
        manifest = export_bundle(ckpt, path, heldout=heldout, formats=formats, tflite_batches=batches, progress=False)
        out[name] = Exported(name, path, manifest, ckpt, heldout)
    return out


@pytest.fixture(params=list(CONFIGS))
def bundle(request: pytest.FixtureRequest, exported: dict[str, Exported]) -> Exported:
    return exported[request.param]
