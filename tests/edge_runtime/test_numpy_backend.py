"""The NumPy backend against the PyTorch model it was packed from, one reading at a time, state carried."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_runtime.backends.numpy_backend import NumpyBackend
from edge_runtime.backends.numpy_weights import pack_weights, unpack_weights
from edgernn.config import ModelConfig
from edgernn.errors import BundleError, ConfigError
from trainer.model import RecurrentModel

STEPS = 200


def _model(**kw) -> RecurrentModel:
    torch.manual_seed(0)
    base = {"input_size": 5, "hidden_size": 16, "output_size": 3}
    return RecurrentModel(ModelConfig(**(base | kw))).eval()


def _stream(cfg: ModelConfig, batch: int = 2, steps: int = STEPS) -> np.ndarray:
    rng = np.random.default_rng(1)
    if cfg.tokens:
        return rng.integers(0, cfg.vocab_size, size=(batch, steps))
    return rng.normal(size=(batch, steps, cfg.input_size)).astype(np.float32)


def _stepped(net, x: np.ndarray) -> np.ndarray:
    state = net.init_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y, state = net.step(x[:, t], state)
        ys.append(y)
    return np.stack(ys, axis=1)


def _torch_forward(model: RecurrentModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x))[0].numpy()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fp32_stream_matches_pytorch_full_sequence(cell, layers):
    model = _model(cell=cell, num_layers=layers)
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    x = _stream(model.config)
    np.testing.assert_allclose(_stepped(net, x), _torch_forward(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_token_model_folds_embedding(cell):
    model = _model(cell=cell, num_layers=2, vocab_size=11, embedding_dim=4, task="generate", output_size=11)
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    x = _stream(model.config)
    np.testing.assert_allclose(_stepped(net, x), _torch_forward(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_int8_equals_pytorch_with_dequantized_weights(cell):
    model = _model(cell=cell, num_layers=2)
    arrays = pack_weights(model.state_dict(), model.config, "int8")
    assert arrays["l0.f.wx.q"].dtype == np.int8 and arrays["l0.f.bx"].dtype == np.float32
    # the weight-only int8 model is exactly PyTorch with the dequantized weights
    deq = unpack_weights(arrays)
    ref = _model(cell=cell, num_layers=2)
    sd = ref.state_dict()
    for layer in range(2):
        sd[f"rnn.weight_ih_l{layer}"] = torch.from_numpy(deq[f"l{layer}.f.wx"].T.copy())
        sd[f"rnn.weight_hh_l{layer}"] = torch.from_numpy(deq[f"l{layer}.f.wh"].T.copy())
    sd["head.weight"] = torch.from_numpy(deq["head.w"].T.copy())
    ref.load_state_dict(sd)
    x = _stream(model.config)
    net = NumpyBackend.from_arrays(model.config, arrays)
    got = _stepped(net, x)
    np.testing.assert_allclose(got, _torch_forward(ref, x), atol=1e-5, rtol=0)
    # and quantization moved it, a little, away from the fp32 model
    err = np.abs(got - _torch_forward(model, x)).max()
    assert 1e-6 < err < 0.1


def test_dynamic_batch_rows_are_independent():
    model = _model(cell="lstm", num_layers=2)
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    x = _stream(model.config, batch=7, steps=20)
    together = _stepped(net, x)
    alone = np.concatenate([_stepped(net, x[i : i + 1]) for i in range(7)])
    np.testing.assert_allclose(together, alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_window_mode_matches_bidirectional_pytorch_last_step(cell):
    model = _model(cell=cell, num_layers=2, bidirectional=True)
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    x = _stream(model.config, batch=3, steps=30)
    np.testing.assert_allclose(net.window(x), _torch_forward(model, x)[:, -1], atol=1e-5, rtol=0)


def test_step_returns_fresh_state_and_leaves_input_state_alone():
    model = _model(cell="gru")
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    s0 = net.init_state(1)
    x = np.ones((1, 5), np.float32)
    y1, s1 = net.step(x, s0)
    assert not s0[0].any()
    y2, _ = net.step(x, s0)
    np.testing.assert_array_equal(y1, y2)
    assert s1[0] is not s0[0]


def test_weights_that_do_not_fit_the_model_are_refused():
    model = _model(cell="gru")
    arrays = pack_weights(model.state_dict(), model.config, "fp32")
    other = ModelConfig(cell="gru", input_size=5, hidden_size=32, output_size=3)
    with pytest.raises(BundleError, match=r"l0\.f\.wx"):
        NumpyBackend.from_arrays(other, arrays)
    with pytest.raises(ConfigError, match="int4"):
        pack_weights(model.state_dict(), model.config, "int4")


def test_gru_long_memory_unit_does_not_drift_from_float64():
    """A unit with z near 1 leaks by (1 - z) per reading; a biased z drifted the state over long streams
    (a vibration bundle's numpy-fp32 was 3e-5 off PyTorch, out of its 1e-5 tolerance)."""
    model = _model(cell="gru")
    with torch.no_grad():
        bias: torch.Tensor = model.rnn.bias_hh_l0  # type: ignore[assignment]  # (3H,): r, z, n
        bias[16:32] += 11.0  # z = sigmoid(~11) = 1 - 2e-5
    net = NumpyBackend.from_arrays(model.config, pack_weights(model.state_dict(), model.config, "fp32"))
    rng = np.random.default_rng(1)
    x = (1.0 + 0.1 * rng.normal(size=(2, 3000, 5))).astype(np.float32)  # a steady reading, 3,000 times
    with torch.no_grad():
        exact = model.double()(torch.from_numpy(x.astype(np.float64)))[0].numpy()
        torch32 = model.float()(torch.from_numpy(x))[0].numpy()
    dev = np.abs(_stepped(net, x) - exact).max()
    assert dev < max(3e-6, 2 * np.abs(torch32 - exact).max()), dev  # as close as PyTorch's own fp32
