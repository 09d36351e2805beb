"""trainer: data -> time-ordered windows -> recurrent model -> checkpoint (PyTorch only).

Public entry points are imported lazily so `import trainer` stays cheap until you train.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["fit", "load_checkpoint"]


def __getattr__(name: str) -> Any:
    if name == "fit":
        from trainer.fit import fit

        return fit
    if name == "load_checkpoint":
        from trainer.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(name)


class _Package(types.ModuleType):
    """`trainer.fit` is both a submodule and the function in it. Importing the submodule makes the import
    system set the package attribute `fit` to the module; keep the function there instead, so
    `from trainer import fit` is the function whichever import ran first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "fit" and isinstance(value, types.ModuleType):
            value = value.fit
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
