"""Bidirectional LSTM classifier. A bidirectional model needs the future, so it cannot stream: on the
device it runs in window mode, a ring buffer of the last T readings re-run every k readings.

    python -m examples.bilstm_window [--out runs/examples]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from examples._common import export, parse_out

CLASSES = ("still", "shake", "tilt")


def gesture(kind: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(length, 3) accelerometer readings of one gesture."""
    t = np.arange(length) / 25.0
    x = rng.normal(0, 0.15, (length, 3))
    x[:, 2] += 9.81
    if kind == 1:
        x[:, 0] += 4 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))
    elif kind == 2:
        angle = np.linspace(0, rng.uniform(0.6, 1.2), length)
        x[:, 0] += 9.81 * np.sin(angle)
        x[:, 2] -= 9.81 * (1 - np.cos(angle))
    return x.astype(np.float32)


def gestures(n: int, length: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    kinds = [i % 3 for i in range(n)]
    return np.stack([gesture(k, length, rng) for k in kinds]), [CLASSES[k] for k in kinds]


def main(out: Path, quick: bool = False) -> dict[str, Any]:
    from edge_runtime import Predictor
    from trainer import fit

    x, y = gestures(300, 40, seed=2)
    result = fit(
        (x, y),
        task="classify",
        out=out / "bilstm_window",
        cell="lstm",
        bidirectional=True,
        hidden=24,
        window=40,
        epochs=10 if quick else 20,
        batch_size=16,
        lr=1e-2,
        progress=False,
        verbose=False,
    )
    bundle = out / "bilstm_window.bundle"
    manifest = export(result.run_dir, bundle)
    assert manifest.mode == "window" and manifest.window is not None

    # On the device: one stream of new gestures back to back; a prediction each time the window is re-run.
    p = Predictor.load(bundle, backend="numpy")
    tx, ty = gestures(30, 40, seed=77)
    correct = judged = 0
    for gx, label in zip(tx, ty, strict=True):
        last = None
        for reading in gx:
            pred = p.step_one(reading.tolist())
            last = pred or last
        if last is not None:
            judged += 1
            correct += last.label == label
    accuracy = correct / max(judged, 1)
    print(f"bidirectional LSTM in window mode (T={manifest.window.length}, hop={manifest.window.hop}): "
          f"{accuracy:.3f} of {judged} gestures right on the device")  # fmt: skip
    return {"device_accuracy": accuracy, "judged": judged, "window": manifest.window.length, "bundle": str(bundle)}


if __name__ == "__main__":
    out, quick = parse_out(__doc__)
    main(out, quick)
