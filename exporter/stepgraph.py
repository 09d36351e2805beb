"""The graphs every artifact is made of, as small torch modules around a trained `RecurrentModel`.

Stream mode (unidirectional models): one reading in, one output out, state explicit:
    StepGraph(x (B, C) | tokens (B,), h_in (L, B, H)[, c_in][, m_in, n_in])
        -> (y (B, O), h_out[, c_out][, m_out, n_out])
Window mode (bidirectional models, which need the future and cannot stream):
    WindowGraph(x (B, T, C) | tokens (B, T)) -> y (B, O), the output at the window's last reading.
Tensor names are those of `edge_runtime.bundle.manifest` (`x`, `<state>_in`, `y`, `<state>_out`).
"""

from __future__ import annotations

import torch
from torch import nn

from edgernn.config import ModelConfig
from trainer.model import RecurrentModel


def input_names(config: ModelConfig) -> list[str]:
    if not config.streamable:
        return ["x"]
    return ["x", *(f"{n}_in" for n in config.state_names)]


def output_names(config: ModelConfig) -> list[str]:
    if not config.streamable:
        return ["y"]
    return ["y", *(f"{n}_out" for n in config.state_names)]


class StepGraph(nn.Module):
    """One step of a streaming model; state tensors in `ModelConfig.state_names` order, positional (ONNX traces
    them as given); returns a tuple in `output_names` order."""

    def __init__(self, model: RecurrentModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.model(x.unsqueeze(1), tuple(state))  # (B, 1, O)
        return (y[:, 0], *new)


class NamedStepGraph(StepGraph):
    """The same step by keyword, returning a dict, so a LiteRT signature names its tensors `x`, `h_in`, ...,
    `y`, `h_out`, ... (`c_*` for an LSTM, `m_*` and `n_*` for readout mean, `m_*` for readout max)."""

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        h_in: torch.Tensor,
        c_in: torch.Tensor | None = None,
        m_in: torch.Tensor | None = None,
        n_in: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        state = [s for s in (h_in, c_in, m_in, n_in) if s is not None]  # state_names order: h, [c], [m, n]
        outs = super().forward(x, *state)
        return dict(zip(output_names(self.model.config), outs, strict=True))


class WindowGraph(nn.Module):
    """A whole window from zero state -> the output at its last reading (bidirectional models)."""

    def __init__(self, model: RecurrentModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.model(x)  # (B, T, O)
        return y[:, -1]


class NamedWindowGraph(WindowGraph):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"y": super().forward(x)}


def sample_inputs(config: ModelConfig, batch: int, window: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Example inputs by name for tracing: `x` and small random state (zeros could let a tracer fold it away)."""
    g = torch.Generator().manual_seed(seed)
    shape: tuple[int, ...] = (batch, window) if window else (batch,)
    if config.tokens:
        x = torch.randint(0, config.vocab_size, shape, generator=g, dtype=torch.long)
    else:
        x = torch.randn((*shape, config.input_size), generator=g)
    inputs = {"x": x}
    if config.streamable:
        layers = config.num_layers * config.directions
        for n in config.state_names:
            inputs[f"{n}_in"] = torch.randn(layers, batch, config.hidden_size, generator=g) * 0.1
        if "n" in config.state_names:  # a count: readings since the reset, the same in every entry of a stream
            inputs["n_in"] = torch.randint(0, 50, (1, batch, 1), generator=g).float().expand_as(inputs["n_in"]).clone()
    return inputs
