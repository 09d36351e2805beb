"""Quality measured the way the device runs: one reading at a time, each stream's state carried.

Every artifact is stepped through its edge_runtime Backend over the held-out streams from zero state,
one stream per call as a device runs it (a TFLite graph compiled for a gateway batch N: N streams per
call), and scored with the trainer's own `heldout_metrics`, so the bundle's report and the training
report are the same figures. PyTorch is stepped the same way as the reference for deviation.
Window-mode (bidirectional) graphs are run on the window ending at every `hop`-th reading instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edge_runtime.backends.base import Backend, State
from edge_runtime.manifest import Artifact, Manifest
from exporter.stepgraph import StepGraph
from trainer.checkpoint import Checkpoint, Heldout
from trainer.metrics import heldout_metrics
from trainer.model import RecurrentModel

StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]

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


def stream_outputs(step: StepFn, init: Callable[[int], State], x: np.ndarray, output_size: int) -> np.ndarray:
    """x (S, L, C) or tokens (S, L) -> y (S, L, O), every stream stepped from zero state."""
    s, n = x.shape[:2]
    out = np.empty((s, n, output_size), np.float32)
    state = init(s)
    for t in range(n):
        y, state = step(np.ascontiguousarray(x[:, t]), state)
        out[:, t] = y
    return out


def window_outputs(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, length: int, hop: int, o: int) -> np.ndarray:
    """The window ending at every hop-th reading once `length` have arrived; NaN rows where none ran."""
    s, n = x.shape[:2]
    out = np.full((s, n, o), np.nan, np.float32)
    for t in range(length - 1, n, hop):
        out[:, t] = run(np.ascontiguousarray(x[:, t - length + 1 : t + 1]))
    return out


def torch_step(model: RecurrentModel) -> tuple[StepFn, Callable[[int], State]]:
    graph = StepGraph(model)

    def step(x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        with torch.no_grad():
            y, *new = graph(torch.from_numpy(x), *(torch.from_numpy(s) for s in state))
        return y.numpy(), tuple(t.numpy() for t in new)

    def init(batch: int) -> State:
        return tuple(s.numpy() for s in model.init_state(batch))

    return step, init


def torch_window(model: RecurrentModel) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y, _ = model(torch.from_numpy(x))
        return y[:, -1].numpy()

    return run


def model_outputs(manifest: Manifest, model: RecurrentModel, x: np.ndarray) -> np.ndarray:
    o = manifest.model.output_size
    if manifest.window is not None:
        return window_outputs(torch_window(model), x, manifest.window.length, manifest.window.hop, o)
    step, init = torch_step(model)
    return stream_outputs(step, init, x, o)


def backend_outputs(manifest: Manifest, backend: Backend, x: np.ndarray, batch: int) -> np.ndarray:
    """An artifact's outputs over all streams, stepped `batch` streams per call (1: one device each)."""
    o = manifest.model.output_size
    parts = []
    for a in range(0, x.shape[0], batch):
        chunk = x[a : a + batch]
        if manifest.window is not None:
            parts.append(window_outputs(backend.window, chunk, manifest.window.length, manifest.window.hop, o))
        else:
            parts.append(stream_outputs(backend.step, backend.init_state, chunk, o))
    return np.concatenate(parts)


def device_batch(artifact: Artifact) -> int:
    """How the device steps an artifact: dynamic-batch and batch-1 graphs one stream per call (a device);
    a gateway graph (TFLite compiled at N > 1) N streams per call. It matters for dynamic int8, whose
    activation scales span the whole batch."""
    sizes = artifact.batch or [1]
    return max(sizes)


def valid_mask(heldout: Heldout, shape: tuple[int, ...]) -> np.ndarray:
    """(S, L) True where a held-out stream has a reading (not padding)."""
    s, n = shape[:2]
    if heldout.lengths is None:
        return np.ones((s, n), bool)
    return np.arange(n)[None, :] < np.asarray(heldout.lengths)[:, None]


def max_deviation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    diff = np.abs(a - b)[mask]
    diff = diff[np.isfinite(diff)]
    return float(diff.max()) if diff.size else 0.0


def int8_tolerance(reference: np.ndarray, mask: np.ndarray) -> float:
    values = reference[mask]
    values = values[np.isfinite(values)]
    spread = float(values.std()) if values.size else 1.0
    return round(max(INT8_MIN_TOLERANCE, INT8_RELATIVE_TOLERANCE * spread), 4)


def headline(metrics: dict[str, Any], task: str) -> tuple[str, float | None]:
    """The one figure a task is judged by: accuracy (classify, generate) or MAE (forecast, anomaly)."""
    if task in ("classify", "generate"):
        return "accuracy", metrics.get("accuracy")
    key = "mae" if task == "forecast" else "forecast_mae"
    return key, metrics.get(key)


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
    out = backend_outputs(manifest, backend, x, device_batch(artifact))
    mask = valid_mask(heldout, out.shape)
    metrics = heldout_metrics(ckpt, out, heldout)
    dev = max_deviation(out, reference.outputs, mask)
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
    x = torch.from_numpy(scaled_inputs(ckpt, heldout.x))
    lengths = heldout.lengths if heldout.lengths is not None else np.full(x.shape[0], x.shape[1])
    probs = ckpt.config.task in ("classify", "generate")

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
        "readings": worst,
        "tolerance": WARMUP_TOLERANCE,
        "on": "probabilities" if probs else "scaled outputs",
        "resets": resets,
        "unconverged": unconverged,
        "measured": True,
    }
