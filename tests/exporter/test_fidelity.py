"""Every artifact computes what PyTorch computes, stepped one reading at a time the way a device runs it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from edge_runtime.backends.onnxrt import OnnxBackend
from edge_runtime.bundle.golden import golden_outputs
from edge_runtime.bundle.loader import Bundle
from edgernn.errors import ExportError
from exporter.tflite_export import describe_int8, weight_quantization
from tests.exporter.conftest import Exported
from tests.exporter.factory import HELDOUT_READINGS
from trainer.model import RecurrentModel


def _scaled(ex: Exported, x: np.ndarray) -> np.ndarray:
    if ex.ckpt.config.tokens:
        return np.asarray(x, np.int64)
    return ex.ckpt.data.scaler.transform(x).astype(np.float32)


def _torch_stream(model: RecurrentModel, x: np.ndarray) -> np.ndarray:
    """PyTorch stepped one reading at a time from zero state: x (L, C) -> (L, O)."""
    state = model.init_state(1)
    ys = []
    with torch.no_grad():
        for t in range(len(x)):
            y, state = model(torch.from_numpy(x[t : t + 1][None]), state)
            ys.append(y[0, 0].numpy())
    return np.stack(ys)


def _torch_windows(model: RecurrentModel, x: np.ndarray, length: int) -> np.ndarray:
    with torch.no_grad():
        windows = np.stack([x[t - length + 1 : t + 1] for t in range(length - 1, len(x))])
        return model(torch.from_numpy(windows))[0][:, -1].numpy()


def test_every_artifact_reproduces_pytorch_over_a_200_step_stream(bundle: Exported) -> None:
    b = Bundle.open(bundle.path)
    model = bundle.ckpt.build_model()
    x = _scaled(bundle, bundle.heldout.x[0, :HELDOUT_READINGS])
    assert len(x) == 200
    m = b.manifest
    want = _torch_windows(model, x, m.window.length) if m.window is not None else _torch_stream(model, x)
    assert [a.status for a in m.artifacts] == ["ok"] * len(m.artifacts), [a.reason for a in m.artifacts]
    for art in m.artifacts:
        backend = b.open_backend(art.id)
        got = golden_outputs(m, backend, x)
        if m.window is not None:
            got = got[m.window.length - 1 :]
        dev = float(np.abs(got - want).max())
        assert dev <= art.tolerance, f"{bundle.name} {art.id}: deviation {dev:.3g} > tolerance {art.tolerance}"
        if art.precision == "fp32":
            assert art.tolerance <= 1e-5
        else:  # int8 is not bit-exact, but it is within a stated, small tolerance
            assert 0 < art.tolerance < 0.2 * float(np.abs(want).max()) + 0.05
        assert bundle.manifest.quality[art.id]["max_abs_dev"] <= art.tolerance


def test_sha256_and_sizes_match_the_files(bundle: Exported) -> None:
    for art in bundle.manifest.artifacts:
        data = (bundle.path / art.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == art.sha256
        assert len(data) == art.bytes > 0
    Bundle.open(bundle.path, verify=True)  # the runtime's own check agrees


def _torch_reference(ex: Exported, x: np.ndarray) -> np.ndarray:
    """PyTorch's outputs for one scaled stream (L, O), computed here; window mode: NaN until the window fills."""
    model = ex.ckpt.build_model()
    w = ex.manifest.window
    if w is None:
        return _torch_stream(model, x)
    out = np.full((len(x), ex.ckpt.config.output_size), np.nan, np.float32)
    out[w.length - 1 :] = _torch_windows(model, x, w.length)
    return out


def test_int8_loses_at_most_one_accuracy_point_or_five_percent_mae(bundle: Exported) -> None:
    """The held-out figures recomputed here, from PyTorch and from each int8 artifact stepped one reading at a
    time, not read back from the manifest; then the manifest must state those same figures."""
    from trainer.metrics import heldout_metrics

    b = Bundle.open(bundle.path)
    streams = [_scaled(bundle, bundle.heldout.stream(i)[0]) for i in range(len(bundle.heldout.x))]
    ref = heldout_metrics(bundle.ckpt, [_torch_reference(bundle, x) for x in streams], bundle.heldout)
    task = bundle.ckpt.config.task
    int8 = [a.id for a in b.manifest.artifacts if a.precision == "int8"]
    assert int8
    for aid in int8:
        backend = b.open_backend(aid)
        got = heldout_metrics(bundle.ckpt, [golden_outputs(b.manifest, backend, x) for x in streams], bundle.heldout)
        if task in ("classify", "generate"):
            assert ref["accuracy"] > 0.8  # the model learned something worth keeping
            assert got["accuracy"] >= ref["accuracy"] - 0.01, aid
            key = "accuracy"
        else:
            key = "mae" if task == "forecast" else "forecast_mae"
            assert got[key] <= 1.05 * ref[key], aid
        assert bundle.manifest.quality[aid][key] == pytest.approx(got[key], rel=1e-6), aid
    key = "accuracy" if task in ("classify", "generate") else "mae" if task == "forecast" else "forecast_mae"
    assert bundle.manifest.quality["pytorch"][key] == pytest.approx(ref[key], rel=1e-4)


def test_tflite_int8_weights_are_per_tensor(exported: dict[str, Exported]) -> None:
    """tflite-runtime 2.14 miscomputes per-channel dynamic int8: every int8 weight must carry one scale."""
    ex = exported["lstm2-classify"]
    content = (ex.path / "model.int8.tflite").read_bytes()
    weights = weight_quantization(content)
    fc = [w for w in weights if w.op == "FULLY_CONNECTED"]
    assert len(fc) >= 5  # 2 layers x (input, recurrent) + head
    assert all(w.scales == 1 for w in weights), [(w.tensor, w.scales) for w in weights]

    # the same inspection sees the quantizer's per-channel default, and the exporter refuses it
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(bytearray((ex.path / "model.tflite").read_bytes()))
    q.add_dynamic_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, qtyping.QuantGranularity.CHANNELWISE)
    per_channel = bytes(q.quantize().quantized_model)
    assert max(w.scales for w in weight_quantization(per_channel)) > 1
    with pytest.raises(ExportError, match="per-channel"):
        describe_int8(per_channel, tokens=False)


def test_fixed_batch_tflite_steps_any_number_of_streams(exported: dict[str, Exported]) -> None:
    ex = exported["lstm2-classify"]
    b = Bundle.open(ex.path)
    b4 = b.open_backend("tflite-fp32-b4")
    assert b4.batch_sizes == (4,)
    x = _scaled(ex, ex.heldout.x[:, :30])  # (4, 30, C)
    x6 = np.concatenate([x, x[:2]])  # 6 streams: one full chunk of 4 and one padded chunk
    one = b.open_backend("onnx-fp32")
    for n in (1, 3, 4, 6):
        state, ref_state = b4.init_state(n), one.init_state(n)
        for t in range(x6.shape[1]):
            y, state = b4.step(x6[:n, t], state)
            ref, ref_state = one.step(x6[:n, t], ref_state)
            assert y.shape == (n, ex.ckpt.config.output_size)
            np.testing.assert_allclose(y, ref, atol=1e-5)
        np.testing.assert_allclose(state[1], ref_state[1], atol=1e-5)


def test_onnx_batch1_fast_path_is_pure(exported: dict[str, Exported]) -> None:
    """Old states a caller keeps (a rollout, another stream) never change under later steps."""
    ex = exported["lstm2-classify"]
    b = Bundle.open(ex.path)
    backend = b.open_backend("onnx-fp32")
    assert isinstance(backend, OnnxBackend)
    x = _scaled(ex, ex.heldout.x[0, :40])
    state = backend.init_state(1)
    for t in range(20):
        _, state = backend.step(x[t : t + 1], state)
    assert backend.fast_steps == 20  # the device loop takes the pre-bound IOBinding path every time
    kept = tuple(s.copy() for s in state)
    streams = {"a": state, "b": backend.init_state(1), "c": backend.init_state(1)}
    for t in range(20, 40):  # three streams stepped in turn, plus a rollout from "a" that is thrown away
        for k in streams:
            _, streams[k] = backend.step(x[t : t + 1], streams[k])
        roll = streams["a"]
        for _ in range(3):
            _, roll = backend.step(x[t : t + 1], roll)
    for now, before in zip(state, kept, strict=True):
        np.testing.assert_array_equal(now, before)
    # and the fast path computes what the plain path (any batch but 1) computes
    s_fast, s_pair = backend.init_state(1), backend.init_state(2)
    for t in range(40):
        y_fast, s_fast = backend.step(x[t : t + 1], s_fast)
        y_pair, s_pair = backend.step(np.repeat(x[t : t + 1], 2, axis=0), s_pair)
        np.testing.assert_allclose(y_fast[0], y_pair[1], atol=1e-6)


def test_golden_vectors_hold_every_artifacts_outputs(bundle: Exported) -> None:
    """The golden file's expected outputs, against PyTorch run here on its readings (not against another
    array the exporter wrote with the same code)."""
    b = Bundle.open(bundle.path)
    g = b.golden()
    m = b.manifest
    n = m.golden["readings"]
    assert g["x"].shape[0] == n == g["x_scaled"].shape[0]
    np.testing.assert_allclose(g["x_scaled"], _scaled(bundle, g["x"]), atol=1e-6)
    want = _torch_reference(bundle, _scaled(bundle, g["x"]))  # (n, O)
    finite = np.isfinite(want).all(axis=1)
    assert finite.sum() >= 64  # window mode: NaN until the window fills
    np.testing.assert_array_equal(np.isfinite(g["y:pytorch"]).all(axis=1), finite)
    np.testing.assert_allclose(g["y:pytorch"][finite], want[finite], atol=1e-5)
    for art in m.artifacts:
        y = g[f"y:{art.id}"]
        assert y.shape == (n, m.model.output_size)
        np.testing.assert_array_equal(np.isfinite(y).all(axis=1), finite, err_msg=art.id)
        dev = np.abs(y[finite] - want[finite]).max()
        assert dev <= art.tolerance, (art.id, dev)


def test_warmup_is_measured_and_means_what_it_says(exported: dict[str, Exported]) -> None:
    ex = exported["gru2-classify"]
    w = ex.manifest.warmup
    assert w["measured"] and w["resets"] == 8 and 0 < w["readings"] < HELDOUT_READINGS // 2
    model = ex.ckpt.build_model()
    x = torch.from_numpy(_scaled(ex, ex.heldout.x))
    with torch.no_grad():
        full = torch.softmax(model(x)[0], -1).numpy()
        for i in range(x.shape[0]):
            r = HELDOUT_READINGS // 4
            part = torch.softmax(model(x[i : i + 1, r:])[0], -1).numpy()[0]
            after = np.abs(part - full[i, r:])[w["readings"] :]
            assert after.max() <= w["tolerance"]

    bi = exported["lstm1-bidir"].manifest
    assert bi.mode == "window" and bi.window is not None
    assert bi.warmup["readings"] == bi.window.length - 1 and not bi.warmup["measured"]


def test_reported_quality_is_what_one_device_per_stream_computes(exported: dict[str, Exported]) -> None:
    """Dynamic int8 scales span a batch, so the report must come from one stream per call, as on a device."""
    from trainer.metrics import heldout_metrics

    ex = exported["lstm2-classify"]
    b = Bundle.open(ex.path)
    x = _scaled(ex, ex.heldout.x)
    for aid in ("onnx-int8", "tflite-int8", "numpy-int8"):
        backend = b.open_backend(aid)
        outs = np.stack([golden_outputs(b.manifest, backend, x[i]) for i in range(len(x))])
        figures = heldout_metrics(ex.ckpt, outs, ex.heldout)
        assert figures["accuracy"] == ex.manifest.quality[aid]["accuracy"], aid
        assert figures["cross_entropy"] == pytest.approx(ex.manifest.quality[aid]["cross_entropy"], rel=1e-6), aid
