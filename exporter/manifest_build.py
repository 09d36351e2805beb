"""Checkpoint -> the manifest's description of the model, its input, output and state.

Artifacts, quality, warm-up and golden vectors are measured later and filled in by `exporter.export`.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from edge_runtime.bundle.manifest import (
    FORMAT_VERSION,
    InputSpec,
    Manifest,
    OutputSpec,
    ScalerSpec,
    StateSpec,
    WindowSpec,
)
from edgernn import __version__
from edgernn.errors import ExportError
from trainer.checkpoint import Checkpoint, Scaler
from trainer.tasks import task_for

_LIBRARIES = ("torch", "onnx", "onnxruntime", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "numpy")


def _scaler(s: Scaler | None) -> ScalerSpec | None:
    if s is None:
        return None
    return ScalerSpec(kind=s.kind, offset=[float(v) for v in s.offset], scale=[float(v) for v in s.scale])


def window_spec(ckpt: Checkpoint) -> WindowSpec | None:
    """Window mode for bidirectional models: the training window, re-run every `hop` readings (default 1)."""
    if ckpt.config.streamable:
        return None
    length = int(ckpt.training.get("window") or 0)
    if length < 1:
        raise ExportError(
            "a bidirectional model runs in window mode and needs its training window length; "
            "the checkpoint's training section has no 'window'"
        )
    return WindowSpec(length=length, hop=max(1, int(ckpt.training.get("hop", 1))))


def base_manifest(ckpt: Checkpoint) -> Manifest:
    cfg, data, head = ckpt.config, ckpt.data, ckpt.head
    inp = InputSpec(
        features=list(data.features),
        dtype="int64" if cfg.tokens else "float32",
        scaler=None if cfg.tokens else _scaler(data.scaler),
        ranges={k: [float(v) for v in vs] for k, vs in data.ranges.items()},
        sample_rate=data.sample_rate,
        vocabulary=list(data.vocabulary),
    )
    out = OutputSpec(
        task=cfg.task,
        per_step=cfg.per_step,
        labels=list(data.labels),
        targets=list(data.targets),
        horizon=cfg.horizon,
        inverse=_scaler(data.target_scaler),
        target_mode=data.target_mode,
        anomaly=head.get("anomaly"),
        interval=head.get("interval"),
    )
    _check_head(ckpt, out)
    window = window_spec(ckpt)
    layers = cfg.num_layers * cfg.directions
    state = [] if window else [StateSpec(n, [layers, "batch", cfg.hidden_size]) for n in cfg.state_names]
    return Manifest(
        model=cfg,
        input=inp,
        output=out,
        state=state,
        artifacts=[],
        mode="window" if window else "stream",
        window=window,
        pool=int(ckpt.training.get("pool", 1)),
        provenance=provenance(ckpt),
        format={"version": FORMAT_VERSION, "edgernn": __version__},
    )


def _check_head(ckpt: Checkpoint, out: OutputSpec) -> None:
    """Refuse a checkpoint whose head settings do not fit its task (the device could not post-process)."""
    why = task_for(ckpt.config.task).check_head(ckpt)  # what each task's head needs (trainer.tasks)
    if why:
        raise ExportError(why)
    if out.target_mode == "delta" and any(t not in ckpt.data.features for t in out.targets):
        raise ExportError(f"target_mode 'delta' needs every target {out.targets} among the inputs {ckpt.data.features}")


def provenance(ckpt: Checkpoint) -> dict[str, Any]:
    versions = {}
    for lib in _LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    prov = dict(ckpt.provenance)
    prov["training"] = dict(ckpt.training)
    prov["export"] = {"libraries": versions, "python": platform.python_version(), "edgernn": __version__}
    return prov
