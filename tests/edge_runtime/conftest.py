"""Bundles for the runtime tests.

`numpy_bundle` assembles a NumPy-only bundle straight from a PyTorch model (Manifest + pack_weights),
with the same layout the exporter writes, so the runtime's own tests need neither ONNX nor TFLite.
The conformance suite uses the real exporter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime.backends.numpy_weights import WEIGHTS_FILE, pack_weights
from edge_runtime.bundle.manifest import (
    Artifact,
    InputSpec,
    Manifest,
    OutputSpec,
    ScalerSpec,
    StateSpec,
    WindowSpec,
)
from edge_runtime.stream.prediction import Prediction
from edgernn.config import ModelConfig

FEATURES = ["ax", "ay", "az", "temp"]
OFFSET = [0.0, 1.0, -2.0, 20.0]
SCALE = [1.0, 2.0, 0.5, 5.0]


def make_model(**kw: Any) -> Any:
    import torch

    from trainer.model import RecurrentModel

    torch.manual_seed(kw.pop("seed", 0))
    base: dict[str, Any] = {"cell": "gru", "input_size": len(FEATURES), "hidden_size": 16, "output_size": 3}
    return RecurrentModel(ModelConfig(**(base | kw))).eval()


def numpy_bundle(
    out: Path,
    model: Any,
    *,
    task: str = "classify",
    warmup: int = 0,
    window: int = 0,
    output: dict[str, Any] | None = None,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> Path:
    """Write a bundle with `numpy-<precision>` artifacts for `model` into `out`; returns `out`."""
    cfg: ModelConfig = model.config
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    artifacts = []
    for precision in precisions:
        name = WEIGHTS_FILE[precision]
        arrays: dict[str, Any] = pack_weights(sd, cfg, precision)
        np.savez(out / name, **arrays)
        data = (out / name).read_bytes()
        artifacts.append(
            Artifact(
                id=f"numpy-{precision}",
                file=name,
                format="numpy",
                precision=precision,
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
                tolerance=1e-5 if precision == "fp32" else 0.05,
            )
        )
    if cfg.tokens:
        inp = InputSpec(features=["token"], dtype="int64", scaler=None, ranges={}, vocabulary=[])
        inp.vocabulary = [f"t{i}" for i in range(cfg.vocab_size)]
    else:
        names = FEATURES[: cfg.input_size]
        n = len(names)
        inp = InputSpec(
            features=names,
            dtype="float32",
            scaler=ScalerSpec("standard", OFFSET[:n], SCALE[:n]),
            ranges={
                "min": [o - 3 * s for o, s in zip(OFFSET[:n], SCALE[:n], strict=True)],
                "max": [o + 3 * s for o, s in zip(OFFSET[:n], SCALE[:n], strict=True)],
            },
            sample_rate=10.0,
        )
    out_spec = OutputSpec(task=task, **(output or {}))
    if task == "classify" and not out_spec.labels:
        out_spec.labels = [f"c{i}" for i in range(cfg.output_size)]
    if task == "generate":
        out_spec.labels = list(inp.vocabulary)
    manifest = Manifest(
        model=cfg,
        input=inp,
        output=out_spec,
        state=[StateSpec(n, [cfg.num_layers * cfg.directions, "batch", cfg.hidden_size]) for n in cfg.state_names],
        artifacts=artifacts,
        mode="window" if window else "stream",
        window=WindowSpec(length=window, hop=1) if window else None,
        warmup={"readings": warmup},
    )
    manifest.write(out)
    return out


@pytest.fixture
def gru_bundle(tmp_path: Path) -> Path:
    return numpy_bundle(tmp_path / "bundle", make_model())


def made(pred: Prediction | None) -> Prediction:
    """The prediction a reading was expected to make."""
    assert pred is not None, "the reading made no prediction"
    return pred
