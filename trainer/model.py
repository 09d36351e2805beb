"""The recurrent network, rebuilt from a `ModelConfig` alone.

`x (B, T, C)` (or tokens `(B, T)`) -> [embedding] -> stacked RNN/LSTM/GRU (batch_first) -> linear head
at every step -> `y (B, T, output_size)`. State is explicit: `forward(x, state) -> (y, state)` with
`state` a tuple of tensors `(num_layers * directions, B, hidden)`: `(h,)` or `(h, c)` for an LSTM.
That is exactly the device's step graph when T = 1.

readout "mean": the head reads the running mean of the top layer's output since the reset instead of the
output itself, `m_t = (m_{t-1} * n_{t-1} + h_t) / (n_{t-1} + 1)`, `n_t = n_{t-1} + 1`, carried as the state
tensors `m` and `n` (`ModelConfig.state_names`); a whole recording's mean is then read at its last reading.
readout "max": the running maximum since the reset, from the reset's zero, `m_t = max(m_{t-1}, h_t)`.
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
        if self.config.readout != "last":
            running = self._running_mean if self.config.readout == "mean" else self._running_max
            out, readout_state = running(out, None if state is None else state[len(new_state) :])
            new_state = (*new_state, *readout_state)
        return self.head(out), new_state  # (B, T, O), state

    def _running_mean(self, out: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """out (B, T, H) -> the running mean at every step (B, T, H), and the new (m, n), each (L, B, H)."""
        b, t_len, h = out.shape
        layers = self.config.num_layers
        if state is None:
            m0 = out.new_zeros(b, 1, h)  # (B, 1, H)
            n0 = out.new_zeros(b, 1, 1)
        else:
            m0 = state[0][-1].unsqueeze(1)  # (B, 1, H)
            n0 = state[1][-1, :, :1].unsqueeze(1)  # (B, 1, 1): every entry of n holds the count
        steps = torch.arange(1, t_len + 1, device=out.device, dtype=out.dtype).view(1, t_len, 1)
        n = n0 + steps  # (B, T, 1)
        mean = (m0 * n0 + torch.cumsum(out, dim=1)) / n  # (B, T, H)
        m_last = mean[:, -1].unsqueeze(0).expand(layers, b, h)  # (L, B, H)
        n_last = n[:, -1].unsqueeze(0).expand(layers, b, h)
        return mean, (m_last.contiguous(), n_last.contiguous())

    def _running_max(self, out: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """out (B, T, H) -> the running max at every step, floored at the reset's 0 (B, T, H), and the new m
        (L, B, H)."""
        b, _, h = out.shape
        m0 = out.new_zeros(b, 1, h) if state is None else state[0][-1].unsqueeze(1)  # (B, 1, H)
        # one step (the exported graph): a plain maximum; ONNX has no cumulative max
        seen = out if out.shape[1] == 1 else torch.cummax(out, dim=1).values
        peak = torch.maximum(seen, m0)  # (B, T, H)
        m_last = peak[:, -1].unsqueeze(0).expand(self.config.num_layers, b, h)  # (L, B, H)
        return peak, (m_last.contiguous(),)


def build_model(config: ModelConfig) -> RecurrentModel:
    return RecurrentModel(config)
