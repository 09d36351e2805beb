"""The training mechanics: gradient clipping, truncated BPTT, streaming equals the full forward pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from edgernn.config import ModelConfig
from trainer.loop import masked_loss, optimizer_step, run_epoch, tbptt
from trainer.model import RecurrentModel, build_model
from trainer.stream import sequence_outputs, step_outputs, window_outputs
from trainer.windows import Batch


def _model(cell: str = "gru", **kw: Any) -> RecurrentModel:
    torch.manual_seed(0)
    return build_model(ModelConfig(cell=cell, input_size=3, hidden_size=8, output_size=2, task="forecast", **kw))


def _grad_norm(model: torch.nn.Module) -> float:
    return float(
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    )


@pytest.mark.parametrize("clip", [1.0, 0.25])
def test_clipping_bounds_the_gradient_norm(clip: float) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: only the gradient is inspected
    x = torch.randn(4, 20, 3) * 50
    y, _ = model(x)
    loss = (y * 1e4).pow(2).mean()  # an exploding loss
    before = optimizer_step(model, opt, loss, clip)
    after = _grad_norm(model)
    assert before > 100 * clip  # it really was large ...
    assert after == pytest.approx(clip, rel=1e-4)  # ... and what the optimizer stepped on was clipped
    # a small gradient is left as it is
    y, _ = model(torch.randn(4, 20, 3) * 1e-3)
    small = optimizer_step(model, opt, y.mean() * 1e-6, clip)
    assert small < clip and _grad_norm(model) == pytest.approx(small, rel=1e-5)


def test_training_clips_every_step() -> None:
    """run_epoch clips before each optimizer step: with a huge lr the weights still move by at most lr * clip."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(8, 30, 3)) * 30).astype(np.float32)
    y = (rng.normal(size=(8, 30, 2)) * 1e3).astype(np.float32)
    batch = Batch(x, y, np.ones((8, 30), bool))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    stats = run_epoch(model, [batch], task="forecast", device=torch.device("cpu"), optimizer=opt, clip=0.5)
    moved = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert stats.steps == 1 and stats.clipped == 1 and stats.grad_norm_max > 0.5
    assert float(moved.norm()) == pytest.approx(0.1 * 0.5, rel=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_tbptt_carries_state_and_cuts_the_graph(cell: str) -> None:
    model = _model(cell)
    x = torch.randn(2, 30, 3, requires_grad=True)
    full, _ = model(x)
    chunks = list(tbptt(model, x, chunk=10))
    assert [c[0] for c in chunks] == [slice(0, 10), slice(10, 20), slice(20, 30)]
    # carried: chunk by chunk gives exactly the outputs of one pass over the whole stream
    torch.testing.assert_close(torch.cat([y for _, y, _ in chunks], dim=1), full, rtol=1e-5, atol=1e-6)
    # cut: the state entering a chunk holds values but no graph
    assert chunks[0][2] is None
    for _, _, state in chunks[1:]:
        assert state is not None
        assert all(s.grad_fn is None and not s.requires_grad for s in state)
        assert all(float(s.abs().sum()) > 0 for s in state)
    # a loss on the last chunk sends no gradient into readings of earlier chunks
    chunks[2][1].sum().backward()
    assert x.grad is not None
    assert float(x.grad[:, :20].abs().sum()) == 0.0
    assert float(x.grad[:, 20:].abs().sum()) > 0.0


def test_stateful_epoch_steps_once_per_chunk() -> None:
    model = _model("lstm")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    batch = Batch(
        rng.normal(size=(4, 50, 3)).astype(np.float32),
        rng.normal(size=(4, 50, 2)).astype(np.float32),
        np.ones((4, 50), bool),
    )
    stats = run_epoch(model, [batch], task="forecast", device=torch.device("cpu"), optimizer=opt, chunk=20)
    assert stats.steps == 3  # readings 0-19, 20-39, 40-49


def test_masked_loss_counts_only_unmasked_positions() -> None:
    out = torch.zeros(1, 4, 3)
    out[0, 3, 2] = 10.0
    y = torch.tensor([[-1, -1, -1, 2]])
    mask = torch.tensor([[False, False, False, True]])
    loss, n = masked_loss("classify", out, y, mask)
    assert n == 1 and float(loss) == pytest.approx(0.0, abs=1e-3)
    y_reg = torch.full((1, 4, 3), float("nan"))
    y_reg[0, 1] = 1.0
    loss, n = masked_loss("forecast", torch.zeros(1, 4, 3), y_reg, torch.ones(1, 4, dtype=torch.bool))
    assert n == 3 and float(loss) == pytest.approx(1.0)


def test_stepping_one_reading_at_a_time_equals_the_full_forward_pass() -> None:
    model = _model("lstm", num_layers=2)
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (40, 25, 33)]
    stepped = step_outputs(model, xs, torch.device("cpu"))
    whole = sequence_outputs(model, xs, torch.device("cpu"))
    for a, b in zip(stepped, whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_window_mode_output_is_the_last_step_of_the_last_window() -> None:
    model = _model("gru", bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    out = window_outputs(model, [x], window=8, device=torch.device("cpu"))[0]
    assert np.isnan(out[:7]).all()  # no output until the window is full, as on the device
    for t in (7, 20, 29):
        expect, _ = model(torch.from_numpy(x[None, t - 7 : t + 1]))
        np.testing.assert_allclose(out[t], expect[0, -1].detach().numpy(), rtol=1e-5, atol=1e-6)
