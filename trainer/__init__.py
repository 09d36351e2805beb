"""trainer: data -> time-ordered windows -> recurrent model -> checkpoint (PyTorch only).

Public entry points are imported lazily so `import trainer` stays cheap until you train.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fit", "load_checkpoint"]


def __getattr__(name: str) -> Any:
    if name == "fit":
        from trainer.fitting import fit

        return fit
    if name == "load_checkpoint":
        from trainer.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(name)
