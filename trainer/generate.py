"""Sampling from a token model one step at a time, feeding each sampled token back (min-char-rnn's loop)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgernn.errors import ConfigError, DataError
from trainer.checkpoint import Checkpoint, load_checkpoint


@torch.no_grad()
def sample(
    source: Checkpoint | str | Path,
    prompt: str | Sequence[str],
    length: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
) -> str | list[str]:
    """Step `prompt` through the model (state carried), then sample `length` tokens, each fed back as the
    next input. `temperature=0` always takes the most probable token. A str prompt (characters, or words
    for a word-level vocabulary) returns a str; a list of tokens returns a list."""
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    vocab = ckpt.data.vocabulary
    if not ckpt.config.tokens or not vocab:
        raise ConfigError("sample() needs a token model (trained on trainer.data.Tokens or a .txt file)")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
    chars = all(len(v) == 1 for v in vocab)
    tokens = (
        list(prompt)
        if isinstance(prompt, str) and chars
        else (prompt.split() if isinstance(prompt, str) else list(prompt))
    )
    index = {tok: i for i, tok in enumerate(vocab)}
    unknown = [t for t in tokens if t not in index]
    if unknown:
        raise DataError(f"prompt tokens {unknown[:5]} are not in the vocabulary of {len(vocab)} tokens")
    if not tokens:
        raise DataError("sample() needs a prompt of at least one token")
    model = ckpt.build_model()
    rng = np.random.default_rng(seed)
    state = model.init_state(1)
    logits = None
    for tok in tokens:
        y, state = model(torch.tensor([[index[tok]]]), state)  # (1, 1, V)
        logits = y[0, 0]
    out: list[str] = []
    for _ in range(length):
        assert logits is not None
        nxt = _choose(logits.double().numpy(), temperature, rng)
        out.append(vocab[nxt])
        y, state = model(torch.tensor([[nxt]]), state)
        logits = y[0, 0]
    if isinstance(prompt, str):
        return "".join(out) if chars else " ".join(out)
    return out


def _choose(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))
