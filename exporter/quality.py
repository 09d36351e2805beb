"""Quality measured the way the device runs: one reading at a time, each stream's state carried.

Every artifact is stepped through its edge_runtime Backend over the held-out streams from zero state
(`edge_runtime.bundle.golden.stream_outputs`; the backends give each stream the output its device computes:
int8 ONNX one stream per call, a TFLite graph compiled for a gateway batch N N streams per call), and
scored with the trainer's own `heldout_metrics`, so the bundle's report and the training report are the
same figures. PyTorch is stepped the same way (`trainer.stream`) as the reference for deviation.
Window-mode (bidirectional) graphs are run on the window ending at every `hop`-th reading instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edge_runtime.backends.base import Backend
from edge_runtime.bundle.golden import max_deviation, stream_outputs
from edge_runtime.bundle.manifest import Artifact, Manifest
from trainer.checkpoint import Checkpoint, Heldout
from trainer.metrics import heldout_metrics
from trainer.model import RecurrentModel
from trainer.stream import step_outputs, window_outputs
from trainer.tasks import task_for

# fp32 artifacts are held to this max abs deviation from PyTorch over whole held-out streams. Measured
# on 8 synthetic models (rnn/lstm/gru, 1-2 layers, bidirectional, tokens): ONNX, TFLite and NumPy fp32
# deviate at most 2.9e-6 on outputs of magnitude 1-10.
FP32_TOLERANCE = 1e-5
# int8 artifacts: a fraction of the spread (std) of PyTorch's outputs on the held-out sample. Measured on
# the same models: at most 2.5% of the std (ONNX dynamic int8, 7-bit weights), 1.9% (TFLite dynamic
# int8 per tensor), 1.1% (NumPy weight-only int8); 10% leaves a 4x margin and still flags a broken kernel.
INT8_RELATIVE_TOLERANCE = 0.1
INT8_MIN_TOLERANCE = 0.02
# task-level limits for any artifact against PyTorch (issue 4): accuracy points, relative MAE
MAX_ACCURACY_LOSS = 0.01
MAX_RELATIVE_MAE_LOSS = 0.05
# warm-up: readings after a reset until the output stays this close to the full-history output
WARMUP_TOLERANCE = 0.01


def scaled_inputs(ckpt: Checkpoint, x: np.ndarray) -> np.ndarray:
    """Raw held-out readings -> model input: scaled float32 features, or int64 tokens."""
    if ckpt.config.tokens:
        return np.asarray(x, np.int64)
    return ckpt.data.scaler.transform(np.asarray(x, np.float32)).astype(np.float32)


def model_outputs(manifest: Manifest, model: RecurrentModel, x: np.ndarray) -> np.ndarray:
    """PyTorch as the device runs it (`trainer.stream`): x (S, L, ...) -> y (S, L, O) from zero state;
    window mode: the window ending at every hop-th reading, NaN elsewhere."""
    cpu = torch.device("cpu")
    if manifest.window is None:
        return np.stack(step_outputs(model, list(x), cpu))
    length, hop = manifest.window.length, manifest.window.hop
    t = np.arange(x.shape[1])
    needed = (t >= length - 1) & ((t - (length - 1)) % hop == 0)
    return np.stack(window_outputs(model, list(x), length, cpu, needed=[needed] * len(x)))


def valid_mask(heldout: Heldout, shape: tuple[int, ...]) -> np.ndarray:
    """(S, L) True where a held-out stream has a reading (not padding)."""
    s, n = shape[:2]
    if heldout.lengths is None:
        return np.ones((s, n), bool)
    return np.arange(n)[None, :] < np.asarray(heldout.lengths)[:, None]


def int8_tolerance(reference: np.ndarray, mask: np.ndarray) -> float:
    values = reference[mask]
    values = values[np.isfinite(values)]
    spread = float(values.std()) if values.size else 1.0
    return round(max(INT8_MIN_TOLERANCE, INT8_RELATIVE_TOLERANCE * spread), 4)


def headline(metrics: dict[str, Any], task: str) -> tuple[str, float | None]:
    """The one figure a task is judged by: accuracy (classify, generate) or MAE (forecast, anomaly)."""
    return task_for(task).headline(metrics)


def task_loss_reason(metrics: dict[str, Any], reference: dict[str, Any], task: str) -> str:
    """Why an artifact's task figure is worse than allowed against PyTorch ('' when it is within limits)."""
    key, value = headline(metrics, task)
    _, ref = headline(reference, task)
    if value is None or ref is None:
        return ""
    if key == "accuracy" and ref - value > MAX_ACCURACY_LOSS + 1e-9:
        return f"accuracy {value:.4f} vs PyTorch {ref:.4f}: loses {100 * (ref - value):.2f} points (at most 1 allowed)"
    if key != "accuracy" and ref > 0 and value > ref * (1 + MAX_RELATIVE_MAE_LOSS):
        return f"{key} {value:.4g} vs PyTorch {ref:.4g}: {100 * (value / ref - 1):.1f}% worse (at most 5% allowed)"
    return ""


@dataclass
class Measured:
    metrics: dict[str, Any]
    outputs: np.ndarray  # (S, L, O)


def measure(
    ckpt: Checkpoint,
    manifest: Manifest,
    heldout: Heldout,
    artifact: Artifact,
    backend: Backend,
    x: np.ndarray,
    reference: Measured,
) -> dict[str, Any]:
    """Step one artifact over the held-out streams; returns its quality entry and sets its tolerance/status."""
    # all streams in one call per reading: int8 backends step each stream (ONNX) or compiled batch
    # (TFLite) on its own, so every stream gets the output its device computes
    out = stream_outputs(manifest, backend, x)
    mask = valid_mask(heldout, out.shape)
    metrics = heldout_metrics(ckpt, out, heldout)
    dev = max_deviation(out[mask], reference.outputs[mask])
    if artifact.precision == "fp32":
        artifact.tolerance = FP32_TOLERANCE
    else:
        artifact.tolerance = int8_tolerance(reference.outputs, mask)
    reasons = []
    if not dev <= artifact.tolerance:  # also catches NaN
        reasons.append(f"max abs deviation from PyTorch {dev:.3g} exceeds its tolerance {artifact.tolerance:.3g}")
    loss = task_loss_reason(metrics, reference.metrics, ckpt.config.task)
    if loss:
        reasons.append(loss)
    if reasons:
        artifact.status, artifact.reason = "out_of_tolerance", "; ".join(reasons)
    return {
        **metrics,
        "max_abs_dev": dev,
        "tolerance": artifact.tolerance,
        "bytes": artifact.bytes,
        "status": artifact.status,
    }


def measure_reference(ckpt: Checkpoint, manifest: Manifest, model: RecurrentModel, heldout: Heldout) -> Measured:
    x = scaled_inputs(ckpt, heldout.x)
    out = model_outputs(manifest, model, x)
    return Measured(heldout_metrics(ckpt, out, heldout), out)


def measure_warmup(ckpt: Checkpoint, manifest: Manifest, model: RecurrentModel, heldout: Heldout) -> dict[str, Any]:
    """Readings after a reset until the streamed output stays within WARMUP_TOLERANCE of full history.

    Resets are placed a quarter and half way into every held-out stream; PyTorch runs each remainder
    from zero state and is compared with the uninterrupted run (probabilities for classify/generate,
    scaled outputs for forecast/anomaly). W is the worst case over all resets.
    """
    if manifest.window is not None:
        return {"readings": manifest.window.length - 1, "measured": False, "why": "window mode: the window must fill"}
    recordings = ckpt.training.get("recordings")
    steps = "readings" if manifest.pool == 1 else f"steps of {manifest.pool} readings"
    if recordings:  # trained whole from a reset: no reading is discarded, the label is the last output
        return {
            "readings": 0,
            "measured": False,
            "why": f"whole recordings ({recordings['shortest']}-{recordings['longest']} {steps} in training): "
            "reset at the start of each, the label is the output at its last reading",
        }
    x = torch.from_numpy(scaled_inputs(ckpt, heldout.x))
    lengths = heldout.lengths if heldout.lengths is not None else np.full(x.shape[0], x.shape[1])
    probs = task_for(ckpt.config.task).categorical

    def view(y: torch.Tensor) -> np.ndarray:
        return (torch.softmax(y, dim=-1) if probs else y).numpy()

    with torch.no_grad():
        full = view(model(x)[0])
        worst, resets, unconverged = 0, 0, 0
        for i in range(x.shape[0]):
            n = int(lengths[i])
            for r in sorted({n // 4, n // 2}):
                if r < 1 or n - r < 2:
                    continue
                part = view(model(x[i : i + 1, r:n])[0])[0]
                off = np.abs(part - full[i, r:n]).max(axis=-1) > WARMUP_TOLERANCE  # (n - r,)
                w = int(np.nonzero(off)[0].max()) + 1 if off.any() else 0
                unconverged += int(w == n - r)
                worst, resets = max(worst, w), resets + 1
    return {
        "readings": worst * manifest.pool,  # measured in model steps; the device counts readings
        "tolerance": WARMUP_TOLERANCE,
        "on": "probabilities" if probs else "scaled outputs",
        "resets": resets,
        "unconverged": unconverged,
        "measured": True,
    }
