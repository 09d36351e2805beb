"""readout "mean" / "max": the head reads the running mean / maximum of the top layer's output since the reset,
carried as state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgernn.config import ModelConfig
from edgernn.errors import ConfigError
from tests.trainer import synth
from trainer.fitting import TrainResult, fit
from trainer.model import RecurrentModel


def _model(cell: str = "gru", layers: int = 1, readout: str = "mean") -> RecurrentModel:
    torch.manual_seed(3)
    cfg = ModelConfig(cell=cell, input_size=2, hidden_size=8, output_size=3, num_layers=layers, readout=readout)
    return RecurrentModel(cfg).eval()


@pytest.mark.parametrize(("cell", "layers"), [("gru", 1), ("lstm", 2)])
def test_the_head_reads_the_mean_of_the_top_layers_outputs(cell: str, layers: int) -> None:
    model = _model(cell, layers)
    x = torch.randn(2, 30, 2)
    with torch.no_grad():
        y, state = model(x)
        top, _ = model.rnn(x)  # (B, T, H)
        want = model.head(top.mean(dim=1))  # (B, O): a whole recording's mean, at its last reading
    torch.testing.assert_close(y[:, -1], want, rtol=1e-5, atol=1e-5)
    assert model.config.state_names == (*(("h", "c") if cell == "lstm" else ("h",)), "m", "n")
    m, n = state[-2], state[-1]
    assert m.shape == n.shape == (layers, 2, 8)  # the shape of every state tensor
    assert torch.all(n == 30.0)  # readings counted since the reset
    torch.testing.assert_close(m[-1], top.mean(dim=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("cell", "layers"), [("gru", 2), ("lstm", 1)])
def test_the_head_reads_the_max_of_the_top_layers_outputs_from_zero(cell: str, layers: int) -> None:
    model = _model(cell, layers, "max")
    x = torch.randn(2, 30, 2)
    with torch.no_grad():
        y, state = model(x)
        top, _ = model.rnn(x)  # (B, T, H)
        peak = top.amax(dim=1).clamp_min(0.0)  # (B, H): the reset's zero is the floor
        want = model.head(peak)
    torch.testing.assert_close(y[:, -1], want, rtol=1e-5, atol=1e-5)
    assert model.config.state_names == (*(("h", "c") if cell == "lstm" else ("h",)), "m")
    assert state[-1].shape == (layers, 2, 8)
    torch.testing.assert_close(state[-1][-1], peak)


@pytest.mark.parametrize("readout", ["mean", "max"])
def test_the_readout_carries_over_chunks_as_state(readout: str) -> None:
    model = _model("gru", 2, readout)
    x = torch.randn(3, 40, 2)
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, :13])
        rest, _ = model(x[:, 13:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, rtol=1e-5, atol=1e-5)


def test_a_running_mean_needs_a_stream() -> None:
    with pytest.raises(ConfigError, match="unsupported readout 'min'; supported: last, mean, max"):
        ModelConfig(cell="gru", input_size=2, hidden_size=8, output_size=3, readout="min")
    with pytest.raises(ConfigError, match=r"bidirectional model runs in window mode .* use readout 'last'"):
        ModelConfig(cell="gru", input_size=2, hidden_size=8, output_size=3, bidirectional=True, readout="mean")


def test_streams_keep_the_last_output(forecast_run: TrainResult) -> None:
    assert forecast_run.checkpoint.config.readout == "last"
    assert forecast_run.checkpoint.config.state_names == forecast_run.checkpoint.config.recurrent_state_names


def test_readout_auto_keeps_the_candidate_with_the_lower_validation_loss(tmp_path: Path) -> None:
    df = synth.recordings_frame(per_class=8, lengths=(5, 30), seed=2)
    r = fit(df, task="classify", target="activity", series_column="rec", time_column="t", out=tmp_path / "run",
            hidden=8, epochs=3, readout="auto", progress=False, verbose=False)  # fmt: skip
    info = r.summary["training"]["readout"]
    losses = info["validation_loss"]
    assert set(losses) == {"max", "mean"} and info["requested"] == "auto"
    assert info["used"] == info["chosen"] == min(losses, key=losses.get) == r.checkpoint.config.readout
    # the kept run's validation loss: with the default ensemble of whole recordings, the merged network's
    assert min(losses.values()) == pytest.approx(r.summary["training"]["best_val_loss"])
    assert r.summary["training"]["ensemble"] == 3
    with pytest.raises(ConfigError, match="readout 'auto' chooses by the classification loss: it needs task"):
        fit(df, task="forecast", target="ax", series_column="rec", time_column="t", out=tmp_path / "f",
            readout="auto", epochs=1, progress=False, verbose=False)  # fmt: skip
