"""ONNX artifacts: the fp32 step graph (dynamic batch axis, opset 17) and its int8 dynamic quantization.

Exporter choice: the TorchScript-based exporter (`dynamo=False`). On torch 2.13 both exporters keep
LSTM and GRU as native ONNX ops, but the dynamo exporter unrolls `nn.RNN` into MatMul/Add/Tanh, adds
Shape/Reshape chains around every recurrent op (about twice the nodes), can only target opset 18
(it down-converts to 17 with the ONNX C API) and takes seconds instead of tens of milliseconds.
onnxruntime's `quantize_dynamic` also recognises the native LSTM it emits (-> DynamicQuantizeLSTM).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch

from edgernn.config import ModelConfig
from edgernn.errors import ExportError
from exporter.stepgraph import StepGraph, WindowGraph, input_names, output_names, sample_inputs
from trainer.model import RecurrentModel

OPSET = 17
TRACE_BATCH = 3  # not 1: a batch of 1 lets the tracer bake the batch size into Reshape constants
_RECURRENT_OPS = ("LSTM", "GRU", "RNN")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' and quantizer's chatter (warnings, root-logger advice, prints)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def export_fp32(model: RecurrentModel, path: Path, window: int = 0) -> None:
    """Write the fp32 graph: a step graph, or for window mode (bidirectional) a window graph."""
    config = model.config
    ins, outs = input_names(config), output_names(config)
    if config.streamable:
        module: torch.nn.Module = StepGraph(model)
        dynamic = {"x": {0: "batch"}, "y": {0: "batch"}} | {n: {1: "batch"} for n in ins[1:] + outs[1:]}
    else:
        module = WindowGraph(model)
        dynamic = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}}
    sample = sample_inputs(config, TRACE_BATCH, window=0 if config.streamable else max(window, 2))
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                module,
                tuple(sample[n] for n in ins),
                str(path),
                input_names=ins,
                output_names=outs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; one message names the format
        raise ExportError(f"ONNX export of the {config.cell} step graph failed: {exc}") from exc


def op_counts(path: Path) -> Counter[str]:
    import onnx

    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def quantize_int8(fp32_path: Path, path: Path, config: ModelConfig) -> tuple[list[str], list[str]]:
    """onnxruntime dynamic int8: weights int8 per output channel, activations quantized at run time.

    `reduce_range` (7-bit weights) because x86 AVX2/AVX-512 without VNNI computes u8 x s8 products
    with VPMADDUBSW, whose int16 pairwise sums saturate: measured on an LSTM step, full-range int8
    weights deviated 0.9 on logits of magnitude ~10, reduce_range 0.07 (per channel) / 0.09 (per
    tensor). ARM (a Pi) is exact either way, so the laptop's quality figures hold on the device.
    Returns what was quantized and what stayed float, read back from the quantized graph.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(
                str(fp32_path),
                str(path),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["LSTM", "MatMul", "Gather"],
                per_channel=True,
                reduce_range=True,
            )
    except Exception as exc:
        raise ExportError(f"onnxruntime int8 quantization of {fp32_path.name} failed: {exc}") from exc
    return describe_quantized(op_counts(path), config)


def describe_quantized(ops: Counter[str], config: ModelConfig) -> tuple[list[str], list[str]]:
    quantized: list[str] = []
    kept: list[str] = []
    if ops["DynamicQuantizeLSTM"]:
        quantized.append(
            f"LSTM weights, {ops['DynamicQuantizeLSTM']} op(s) -> DynamicQuantizeLSTM (int8, 7-bit range, per channel)"
        )
    if ops["MatMulInteger"]:
        quantized.append(
            f"head weights, {ops['MatMulInteger']} MatMul -> MatMulInteger (int8, 7-bit range, per channel)"
        )
    if config.tokens and ops["DequantizeLinear"]:
        quantized.append("embedding table (int8, dequantized on lookup)")
    for op in _RECURRENT_OPS:
        if ops[op]:
            kept.append(f"{ops[op]} {op} op(s): onnxruntime has no int8 {op} kernel, weights stay float32")
    if config.tokens and not ops["DequantizeLinear"]:
        kept.append("embedding table (float32)")
    kept.append(
        "biases and recurrent state (float32); activations are quantized per call with one scale per tensor, "
        "so the runtime steps a batch of streams one stream per call (each gets what it gets alone)"
    )
    if not quantized:
        raise ExportError(f"onnxruntime quantized nothing in the {config.cell} graph (ops: {dict(ops)})")
    return quantized, kept
