"""PyTorch eager on a bundle's own weights: the reference row of `edgernn bench`, on a laptop with torch.

The model is rebuilt from the fp32 NumPy artifact (not the training checkpoint), so the row measures the
same weights the device artifacts carry. Laptop side: it needs `trainer.model`, which the device runtime
must never import (DESIGN.md), so `edgernn bench` adds these variants only when torch is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.select import example_input
from edge_runtime.device.bench import Variant


def torch_variants(bundle: Bundle, sizes: Sequence[int]) -> list[Variant]:
    """PyTorch eager on the same weights (from the fp32 NumPy artifact), one step with state, per batch size."""
    if find_spec("torch") is None or bundle.manifest.mode != "stream":
        return []
    arts = bundle.usable_artifacts("numpy", "fp32")
    if not arts:
        return []
    import torch

    from edge_runtime.backends.numpy_weights import load_weights

    model = eager_model(bundle.manifest.model, load_weights(bundle.file(arts[0].file), bundle.manifest.model))
    out = []
    for key, n in [("raw", 1)] + [("raw_many", n) for n in sizes]:
        x = torch.from_numpy(example_input(bundle.manifest, n))[:, None]  # (B, 1, C)
        state = [model.init_state(n)]

        def step(x: Any = x, state: list[Any] = state) -> None:
            with torch.no_grad():
                _, state[0] = model(x, state[0])

        out.append(Variant(f"pytorch-eager|{key}|{n}", step, n))
    return out


def eager_model(config: Any, plain: dict[str, np.ndarray]) -> Any:
    """A `trainer.model.RecurrentModel`-shaped torch module with the NumPy weight file's weights."""
    import torch

    from trainer.model import RecurrentModel

    model = RecurrentModel(config).eval()
    sd = {}
    for layer in range(config.num_layers):
        for d, sfx in enumerate(("", "_reverse")[: config.directions]):
            key = f"l{layer}.{'fr'[d]}"
            sd[f"rnn.weight_ih_l{layer}{sfx}"] = plain[f"{key}.wx"].T
            sd[f"rnn.weight_hh_l{layer}{sfx}"] = plain[f"{key}.wh"].T
            sd[f"rnn.bias_ih_l{layer}{sfx}"] = plain[f"{key}.bx"]
            sd[f"rnn.bias_hh_l{layer}{sfx}"] = plain[f"{key}.bh"]
    sd["head.weight"], sd["head.bias"] = plain["head.w"].T, plain["head.b"]
    if config.tokens:
        sd["embedding.weight"] = plain["emb"]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return model
