"""Defaults of the training options left unset (None), per kind of data; no heavy imports (the CLI reads it).

"streams": long streams cut into many windows or TBPTT chunks. "recordings": whole labelled recordings,
typically a few dozen per class (public UCR/UEA sets, gestures, machine runs): far fewer optimizer steps
per epoch, so smaller batches, more epochs and more patience, weight decay against over-fitting, and an
ensemble of three networks (`trainer.ensemble`), because one network's result there swings with its seed.
Chosen by measurement on the sets of `benchmarks/classify.py` (the measurements: benchmarks/CLASSIFY.md).
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "streams": {
        "epochs": 30,
        "patience": 5,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "dropout": 0.0,
        "batch_size": 64,
        "recording_loss": "last",
        "readout": "last",
        "augment": "none",
        "lr_schedule": "none",
        "ensemble": 1,
    },
    "recordings": {
        "epochs": 200,
        "patience": 40,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "dropout": 0.0,
        "batch_size": 8,
        "recording_loss": "last",
        "readout": "max",
        "augment": "jitter,scale,warp,crop",
        "lr_schedule": "none",
        "ensemble": 3,
    },
}


def defaults(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` with each None replaced by the default for this kind of data ("streams" | "recordings")."""
    table = DEFAULTS["recordings" if kind == "recordings" else "streams"]
    return {k: (table[k] if v is None else v) for k, v in given.items()}


def help_default(name: str) -> str:
    """The defaults of one option, for its --help."""
    if name == "recording_loss":  # whole recordings only
        return f" (default: {DEFAULTS['recordings'][name]})"
    return f" (default: {DEFAULTS['streams'][name]}; {DEFAULTS['recordings'][name]} for whole recordings)"
