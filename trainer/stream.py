"""Run a trained model the way the device will: one reading at a time with state carried, or, for
bidirectional models, in window mode (the last `window` readings re-run at each reading).

These produce per-reading outputs `(L, O)` (logits or scaled forecasts, NaN where there is no output) that
`trainer.metrics` scores, exactly as the exporter scores every artifact.
"""

from __future__ import annotations

import numpy as np
import torch

from trainer.model import RecurrentModel


@torch.no_grad()
def step_outputs(
    model: RecurrentModel, xs: list[np.ndarray], device: torch.device, batch: int = 256
) -> list[np.ndarray]:
    """Step each stream one reading at a time from zero state; streams are batched (B, 1, C) per step."""
    model.eval()
    results: list[np.ndarray] = []
    for a in range(0, len(xs), batch):
        group = xs[a : a + batch]
        length = max(len(x) for x in group)
        padded = _pad(group, length)  # (B, L, C) or (B, L)
        x = torch.from_numpy(padded).to(device)
        state = model.init_state(len(group), device)
        outs = []
        for t in range(length):
            y, state = model(x[:, t : t + 1], state)  # (B, 1, O)
            outs.append(y[:, 0])
        out = torch.stack(outs, dim=1).float().cpu().numpy()  # (B, L, O)
        results += [out[i, : len(g)] for i, g in enumerate(group)]
    return results


@torch.no_grad()
def sequence_outputs(model: RecurrentModel, xs: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """Whole-recording forward from zero state: the same numbers as `step_outputs` for a unidirectional
    model (used to calibrate on the validation split quickly)."""
    model.eval()
    out = []
    for x in xs:
        y, _ = model(torch.from_numpy(x[None]).to(device))
        out.append(y[0].float().cpu().numpy())
    return out


@torch.no_grad()
def window_outputs(
    model: RecurrentModel,
    xs: list[np.ndarray],
    window: int,
    device: torch.device,
    needed: list[np.ndarray] | None = None,
    batch: int = 256,
) -> list[np.ndarray]:
    """Window mode, as the device runs it: once `window` readings have arrived, the output at reading t is
    the last output of a forward pass over readings t - window + 1 .. t from zero state; before that there
    is no output (NaN). Only readings marked in `needed` (L,) bool are computed; the rest are NaN."""
    model.eval()
    results = []
    for i, x in enumerate(xs):
        n = len(x)
        want = np.ones(n, bool) if needed is None else needed[i]
        out = np.full((n, model.config.output_size), np.nan, dtype=np.float32)
        full = np.flatnonzero(want & (np.arange(n) >= window - 1))
        for a in range(0, len(full), batch):
            ts = full[a : a + batch]
            wins = x[ts[:, None] + np.arange(-window + 1, 1)]  # (b, W, C) or (b, W)
            y, _ = model(torch.from_numpy(wins).to(device))
            out[ts] = y[:, -1].float().cpu().numpy()
        results.append(out)
    return results


def _pad(xs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(xs), length, *xs[0].shape[1:]), dtype=xs[0].dtype)
    for i, x in enumerate(xs):
        out[i, : len(x)] = x
    return out
