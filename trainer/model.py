"""The recurrent network, rebuilt from a `ModelConfig` alone.

`x (B, T, C)` (or tokens `(B, T)`) -> [embedding] -> stacked RNN/LSTM/GRU (batch_first) -> linear head
at every step -> `y (B, T, output_size)`. State is explicit: `forward(x, state) -> (y, state)` with
`state` a tuple of tensors `(num_layers * directions, B, hidden)`: `(h,)` or `(h, c)` for an LSTM.
That is exactly the device's step graph when T = 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgernn.config import ModelConfig

State = tuple[torch.Tensor, ...]

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim) if config.tokens else None
        kwargs: dict[str, Any] = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _CELLS[config.cell](
            input_size=config.rnn_input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            **kwargs,
        )
        self.head = nn.Linear(config.hidden_size * config.directions, config.output_size)

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        shape = (self.config.num_layers * self.config.directions, batch, self.config.hidden_size)
        return tuple(torch.zeros(shape, device=device) for _ in self.config.state_names)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if self.embedding is not None:
            x = self.embedding(x.long())  # (B, T) -> (B, T, E)
        if state is None:
            out, new = self.rnn(x)
        elif self.config.cell == "lstm":
            out, new = self.rnn(x, (state[0], state[1]))
        else:
            out, new = self.rnn(x, state[0])
        new_state: State = tuple(new) if isinstance(new, tuple) else (new,)
        return self.head(out), new_state  # (B, T, O), state


def build_model(config: ModelConfig) -> RecurrentModel:
    return RecurrentModel(config)
