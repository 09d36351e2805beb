"""The seed's sentiment LSTM: word tokens through an embedding, two stacked LSTM layers, padded batches,
one label per review. On the device the words arrive one at a time; the prediction after the last word is
the review's label.

    python -m examples.sentiment_lstm [--out runs/examples]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from examples._common import export, parse_out

POSITIVE = ["great", "lovely", "fine", "superb", "moving", "clever", "warm", "bright"]
NEGATIVE = ["awful", "dull", "boring", "weak", "clumsy", "cold", "tedious", "flat"]
FILLER = ["the", "film", "was", "a", "plot", "and", "story", "actors", "very", "quite", "with", "its"]


def reviews(n: int, seed: int) -> tuple[list[list[str]], list[str]]:
    """Reviews of 5-14 words; the label is the majority sentiment of the opinion words in it."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        positive = i % 2 == 0
        length = int(rng.integers(5, 15))
        words = list(rng.choice(FILLER, size=length))
        major, minor = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
        slots = rng.choice(length, size=min(3, length), replace=False)
        for k, slot in enumerate(slots):
            words[slot] = str(rng.choice(minor if k == 2 and rng.random() < 0.5 else major))
        seqs.append([str(w) for w in words])
        labels.append("pos" if positive else "neg")
    return seqs, labels


def main(out: Path, quick: bool = False) -> dict[str, Any]:
    from edge_runtime import Predictor
    from trainer import fit
    from trainer.table import Tokens

    seqs, labels = reviews(600, seed=1)
    result = fit(
        Tokens(seqs, labels),
        task="classify",
        out=out / "sentiment_lstm",
        cell="lstm",
        layers=2,
        hidden=32,
        embedding_dim=16,
        epochs=12 if quick else 25,
        batch_size=16,
        progress=False,
        verbose=False,
    )
    bundle = out / "sentiment_lstm.bundle"
    manifest = export(result.run_dir, bundle)

    # On the device: a fresh state per review, one word per step; the last prediction is the verdict.
    test_seqs, test_labels = reviews(100, seed=99)
    p = Predictor.load(bundle, backend="onnxruntime", precision="int8")
    correct = 0
    for words, label in zip(test_seqs, test_labels, strict=True):
        p.reset()
        pred = None
        for w in words:
            pred = p.step_one(w)
        correct += pred is not None and pred.label == label
    device_accuracy = correct / len(test_seqs)
    print(f"sentiment LSTM: training report accuracy {result.metrics['streaming']['accuracy']:.3f}")
    print(f"on the device (onnxruntime int8, {p.artifact.id}): {device_accuracy:.3f} on 100 new reviews")
    return {"device_accuracy": device_accuracy, "artifacts": manifest.artifact_ids(), "bundle": str(bundle)}


if __name__ == "__main__":
    out, quick = parse_out(__doc__)
    main(out, quick)
