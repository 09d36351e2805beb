"""TFLite artifacts: litert-torch converts the step graph at a fixed batch; ai-edge-quantizer makes int8.

int8 is dynamic-range with **per-tensor** weight scales (`QuantGranularity.TENSORWISE`), not the
quantizer's per-channel default: tflite-runtime 2.14, still the interpreter on many Pis, computes
per-channel dynamic-range FULLY_CONNECTED wrongly and without any error; per-tensor is computed
correctly by it and by ai-edge-litert. `weight_quantization` reads the scales back from the flatbuffer,
so the export (and its test) can prove every int8 weight carries exactly one scale.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from edgernn.errors import ExportError
from exporter.stepgraph import NamedStepGraph, NamedWindowGraph, sample_inputs
from trainer.model import RecurrentModel


def _quiet_tensorflow() -> None:
    """Before litert-torch or the quantizer is imported: where TensorFlow is installed, litert-torch converts
    through it, and its import logs oneDNN and C++ INFO/WARNING lines straight to stderr (fd 2, before any
    capture), none of them about the user's model. A user's own TF_CPP_MIN_LOG_LEVEL is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # 2: errors only


@contextlib.contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    """Capture Python and native (C++ logging to fd 2) output of the converter; yields what it printed."""
    sink = io.StringIO()
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"  # we draw our own progress bar
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
                warnings.simplefilter("ignore")
                yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.write(tmp.read().decode(errors="replace"))


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return (" | converter said: " + " / ".join(kept)) if kept else ""


def convert_fp32(model: RecurrentModel, batch: int, window: int = 0) -> bytes:
    """The fp32 flatbuffer of the step graph (or window graph) at one fixed batch size."""
    config = model.config
    module = NamedStepGraph(model) if config.streamable else NamedWindowGraph(model)
    sample = sample_inputs(config, batch, window=0 if config.streamable else window)
    try:
        # litert-torch imports torchao, which logs warnings about CUDA kernels a CPU export never uses
        for noisy in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        _quiet_tensorflow()
        import litert_torch
    except ImportError as exc:
        raise ExportError(f"TFLite export needs litert-torch (pip install 'edgernn[export]'): {exc}") from exc
    with _captured_output() as said:
        try:
            with torch.no_grad():
                edge = litert_torch.convert(module.eval(), sample_kwargs=sample)
            content: bytes = edge.model_content()
        except Exception as exc:  # litert-torch surfaces torch.export and MLIR errors of many types
            raise ExportError(
                f"litert-torch could not convert the {config.cell} graph at batch {batch}: "
                f"{type(exc).__name__}: {str(exc)[:400]}{_tail(said.getvalue())}"
            ) from exc
    return content


def quantize_int8(fp32: bytes) -> bytes:
    """Dynamic-range int8: weights int8 with one scale per tensor, activations float (quantized per call)."""
    try:
        _quiet_tensorflow()
        from ai_edge_quantizer import qtyping, quantizer
    except ImportError as exc:
        raise ExportError(f"TFLite int8 needs ai-edge-quantizer (pip install 'edgernn[export]'): {exc}") from exc
    with _captured_output() as said:
        try:
            q = quantizer.Quantizer(bytearray(fp32))
            q.add_dynamic_config(
                regex=".*",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                num_bits=8,
                granularity=qtyping.QuantGranularity.TENSORWISE,
            )
            result = q.quantize()
        except Exception as exc:
            raise ExportError(
                f"ai-edge-quantizer dynamic int8 failed: {type(exc).__name__}: {exc}{_tail(said.getvalue())}"
            ) from exc
    if result.quantized_model is None:
        raise ExportError("ai-edge-quantizer returned no model")
    return bytes(result.quantized_model)


@dataclass
class QuantizedWeight:
    tensor: str
    op: str  # the operator that consumes it, e.g. FULLY_CONNECTED
    shape: tuple[int, ...]
    scales: int  # 1: per tensor; > 1: per channel
    quantized_dimension: int


def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def weight_quantization(content: bytes) -> list[QuantizedWeight]:
    """Every int8 constant of the flatbuffer, with the op that reads it and its number of scales."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    names = _op_names()
    found: list[QuantizedWeight] = []
    for graph in model.subgraphs:
        consumer: dict[int, str] = {}
        for op in graph.operators:
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            for t in op.inputs if op.inputs is not None else []:
                consumer.setdefault(int(t), names.get(code, str(code)))
        for k, tensor in enumerate(graph.tensors):
            qp = tensor.quantization
            if tensor.type != schema.TensorType.INT8 or qp is None or qp.scale is None:
                continue
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            found.append(
                QuantizedWeight(
                    tensor=name,
                    op=consumer.get(k, "?"),
                    shape=tuple(int(d) for d in np.asarray(tensor.shape)),
                    scales=int(np.asarray(qp.scale).size),
                    quantized_dimension=int(qp.quantizedDimension),
                )
            )
    return found


def op_counts(content: bytes) -> Counter[str]:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    names = _op_names()
    ops: Counter[str] = Counter()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            ops[names.get(code, str(code))] += 1
    return ops


def describe_int8(int8: bytes, tokens: bool) -> tuple[list[str], list[str]]:
    """What the quantizer made int8 and what stayed float; refuses per-channel weights (see module doc)."""
    weights = weight_quantization(int8)
    per_channel = [w.tensor for w in weights if w.scales != 1]
    if per_channel:
        raise ExportError(
            f"ai-edge-quantizer wrote per-channel scales for {per_channel[:3]}; per-tensor is required "
            "(tflite-runtime 2.14 miscomputes per-channel dynamic int8)"
        )
    if not weights:
        raise ExportError("ai-edge-quantizer quantized no weight of the graph")
    by_op = Counter(w.op for w in weights)
    quantized = [f"{n} {op} weight tensor(s): int8, one scale per tensor" for op, n in sorted(by_op.items())]
    kept = ["biases and recurrent state (float32)", "activations: float32, quantized per call by the kernels"]
    if tokens and not {"GATHER", "EMBEDDING_LOOKUP"} & set(by_op):
        kept.insert(0, "embedding table (float32)")
    return quantized, kept
