"""K trained networks of one shape, merged into one network whose output is the mean of theirs.

A stacked RNN/LSTM/GRU whose hidden units fall into K groups that never read each other is K networks
side by side. So K members, each `hidden` wide, become one network `K * hidden` wide: every gate's input
weights are stacked, the recurrent weights (and, above the first layer, the input weights) are block
diagonal, and the head reads all K groups with each member's weights divided by K, which averages their
outputs (for a classifier, their logits). The readouts "mean" and "max" act unit by unit, so they carry over
unchanged. The result is an ordinary `RecurrentModel`: every exporter, quantizer and the device runtime run
it as they run any other, with K times the state and about K^2 times the recurrent weights (of which all
but K blocks are zeros).

Used by `trainer.fitting` for `--ensemble K` (whole labelled recordings: a few dozen recordings train
networks that differ a lot from seed to seed; their mean is steadier than any one).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from edgernn.errors import ConfigError
from trainer.model import RecurrentModel, build_model

_GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # rows of each weight, in torch's gate order, are gates x hidden


def check_ensemble(k: int, *, bidirectional: bool, tokens: bool) -> None:
    """One line naming the bad value, for options that cannot make an ensemble."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"ensemble must be a whole number of networks >= 1, got {k!r}")
    if k > 1 and bidirectional:
        raise ConfigError(
            "ensemble > 1 merges networks that step forward only; drop --bidirectional or use --ensemble 1"
        )
    if k > 1 and tokens:
        raise ConfigError(
            "ensemble > 1 needs numeric readings (a token model's embedding is not merged); use --ensemble 1"
        )


def merge(members: list[RecurrentModel]) -> RecurrentModel:
    """One network computing the mean of `members`' outputs (members: the same config, forward only, no tokens)."""
    if not members:
        raise ValueError("merge needs at least one network")
    first = members[0].config
    if any(m.config != first for m in members):
        raise ValueError("merge needs networks of one config")
    check_ensemble(len(members), bidirectional=first.bidirectional, tokens=first.tokens)
    k, h, gates = len(members), first.hidden_size, _GATES[first.cell]
    merged = build_model(replace(first, hidden_size=k * h))
    states = [m.state_dict() for m in members]
    out: dict[str, torch.Tensor] = {}
    for layer in range(first.num_layers):
        for kind in ("ih", "hh"):
            w = f"weight_{kind}_l{layer}"
            block = kind == "hh" or layer > 0  # what the weight reads is the K groups themselves
            out[f"rnn.{w}"] = _stack([s[f"rnn.{w}"] for s in states], gates, h, block)
            b = f"rnn.bias_{kind}_l{layer}"
            out[b] = _stack([s[b].unsqueeze(1) for s in states], gates, h, False).squeeze(1)
    out["head.weight"] = torch.cat([s["head.weight"] / k for s in states], dim=1)  # (O, K*H)
    out["head.bias"] = torch.stack([s["head.bias"] for s in states]).mean(dim=0)  # (O,)
    merged.load_state_dict(out)
    return merged


def _stack(weights: list[torch.Tensor], gates: int, h: int, block: bool) -> torch.Tensor:
    """Members' (gates*H, In) weights -> (gates*K*H, In') with gate g of member m at rows g*K*H + m*H;
    In' = In (every member reads the same input) or K*In block diagonal (member m reads group m only)."""
    k = len(weights)
    width = weights[0].shape[1]
    out = weights[0].new_zeros(gates * k * h, width * k if block else width)
    for m, w in enumerate(weights):
        cols = slice(m * width, (m + 1) * width) if block else slice(None)
        for g in range(gates):
            out[g * k * h + m * h : g * k * h + (m + 1) * h, cols] = w[g * h : (g + 1) * h]
    return out
