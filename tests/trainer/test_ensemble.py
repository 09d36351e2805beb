"""trainer.ensemble: K networks merged into one compute the mean of their outputs, step by step, as exported."""

from __future__ import annotations

import pytest
import torch

from edgernn.config import ModelConfig
from edgernn.errors import ConfigError
from trainer.ensemble import check_ensemble, merge
from trainer.model import build_model


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("readout", ["last", "mean", "max"])
def test_merged_network_outputs_the_mean_of_its_members(cell: str, layers: int, readout: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, input_size=3, hidden_size=5, output_size=4, num_layers=layers, readout=readout)
    members = [build_model(config).eval() for _ in range(3)]
    merged = merge(members).eval()
    assert merged.config.hidden_size == 15
    x = torch.randn(2, 9, 3)  # (B, T, C)
    with torch.no_grad():
        want = torch.stack([m(x)[0] for m in members]).mean(dim=0)  # (B, T, O)
        whole, _ = merged(x)
        # one reading at a time with the state carried, as the device steps the exported graph
        state = merged.init_state(2)
        steps = []
        for t in range(x.shape[1]):
            y, state = merged(x[:, t : t + 1], state)
            steps.append(y)
    torch.testing.assert_close(whole, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps, dim=1), want, atol=1e-5, rtol=1e-5)


def test_one_member_is_itself() -> None:
    torch.manual_seed(1)
    model = build_model(ModelConfig(cell="gru", input_size=2, hidden_size=4, output_size=3)).eval()
    merged = merge([model]).eval()
    x = torch.randn(1, 6, 2)
    with torch.no_grad():
        torch.testing.assert_close(merged(x)[0], model(x)[0])


def test_members_of_different_shapes_are_refused() -> None:
    a = build_model(ModelConfig(cell="gru", input_size=2, hidden_size=4, output_size=3))
    b = build_model(ModelConfig(cell="gru", input_size=2, hidden_size=8, output_size=3))
    with pytest.raises(ValueError, match="one config"):
        merge([a, b])


@pytest.mark.parametrize(
    ("k", "kwargs", "message"),
    [
        (0, {}, "ensemble must be a whole number of networks >= 1, got 0"),
        (2, {"bidirectional": True}, "drop --bidirectional"),
        (2, {"tokens": True}, "numeric readings"),
    ],
)
def test_ensemble_options_refused_in_one_line(k: int, kwargs: dict[str, bool], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_ensemble(k, **{"bidirectional": False, "tokens": False, **kwargs})
