"""Write each requested artifact file into the (temporary) bundle directory and describe it.

Artifact ids: `onnx-fp32`, `onnx-int8`, `tflite-fp32`, `tflite-int8` (batch 1), `tflite-fp32-b<N>`,
`tflite-int8-b<N>` (gateway batch sizes), `numpy-fp32`, `numpy-int8`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.backends.numpy_weights import WEIGHTS_FILE, pack_weights
from edge_runtime.bundle.loader import sha256_file
from edge_runtime.bundle.manifest import Artifact
from edgernn.errors import EdgeRNNError, ExportError
from exporter import onnx_export, tflite_export
from trainer.model import RecurrentModel


def artifact_id(fmt: str, precision: str, batch: int = 1) -> str:
    return f"{fmt}-{precision}" + (f"-b{batch}" if fmt == "tflite" and batch != 1 else "")


def file_name(fmt: str, precision: str, batch: int = 1) -> str:
    if fmt == "numpy":
        return WEIGHTS_FILE[precision]
    stem = "model" + (".int8" if precision == "int8" else "") + (f".b{batch}" if batch != 1 else "")
    return f"{stem}.{fmt}"


@dataclass
class Job:
    """One artifact to build: `build(path) -> (quantized, kept_float)`; `needs` names an artifact it reads."""

    artifact: Artifact
    build: Callable[[Path], tuple[list[str], list[str]]]
    needs: str | None = None


def plan(
    model: RecurrentModel, formats: list[str], precisions: list[str], tflite_batches: list[int], window: int
) -> Iterator[Job]:
    """The artifacts to build, fp32 before the int8 made from it."""
    for fmt in formats:
        batches = tflite_batches if fmt == "tflite" else [1]
        for batch in batches:
            fp32_file = file_name(fmt, "fp32", batch)
            for precision in precisions:
                art = Artifact(
                    id=artifact_id(fmt, precision, batch),
                    file=file_name(fmt, precision, batch),
                    format=fmt,
                    precision=precision,
                    batch=[batch] if fmt == "tflite" else None,
                    opset=onnx_export.OPSET if fmt == "onnx" else None,
                )
                needs = artifact_id(fmt, "fp32", batch) if precision == "int8" and fmt != "numpy" else None
                yield Job(art, _builder(model, fmt, precision, batch, window, fp32_file), needs)


def _builder(
    model: RecurrentModel, fmt: str, precision: str, batch: int, window: int, fp32_file: str
) -> Callable[[Path], tuple[list[str], list[str]]]:
    cfg = model.config

    def onnx(path: Path) -> tuple[list[str], list[str]]:
        if precision == "fp32":
            onnx_export.export_fp32(model, path, window)
            return [], []
        return onnx_export.quantize_int8(path.parent / fp32_file, path, cfg)

    def tflite(path: Path) -> tuple[list[str], list[str]]:
        if precision == "fp32":
            path.write_bytes(tflite_export.convert_fp32(model, batch, window))
            return [], []
        content = tflite_export.quantize_int8((path.parent / fp32_file).read_bytes())
        path.write_bytes(content)
        return tflite_export.describe_int8(content, cfg.tokens)

    def numpy(path: Path) -> tuple[list[str], list[str]]:
        state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        try:
            arrays = pack_weights(state, cfg, precision)
        except EdgeRNNError as exc:
            raise ExportError(f"packing NumPy {precision} weights failed: {exc}") from exc
        with path.open("wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        if precision == "fp32":
            return [], []
        return (
            ["every weight matrix (and the embedding): int8 weight-only, one scale per output channel"],
            ["biases (float32)", "compute: float32, weights dequantized once when the backend loads"],
        )

    return {"onnx": onnx, "tflite": tflite, "numpy": numpy}[fmt]


def build(job: Job, directory: Path) -> None:
    """Write the file and fill in its sha256, size and what was quantized; ExportError on failure."""
    art = job.artifact
    path = directory / art.file
    try:
        art.quantized, art.kept_float = job.build(path)
    except ExportError:
        raise
    except Exception as exc:  # a converter's own error type: keep its message, name the artifact
        raise ExportError(f"{type(exc).__name__}: {exc}") from exc
    if not path.is_file() or path.stat().st_size == 0:
        raise ExportError(f"the converter wrote no {art.file}")
    art.sha256, art.bytes = sha256_file(path), path.stat().st_size
