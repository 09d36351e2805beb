"""`edgernn bench`: the device runtime's measurements (`edge_runtime.cli.bench`), with PyTorch eager beside
them when torch is installed (`exporter.reference`). The command is put together here, in the dispatcher,
because it spans both sides: the runtime on a Pi never imports the trainer, and a Pi without torch simply
gets no reference row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def add_parser(sub: Any) -> None:
    from edge_runtime.cli import bench

    bench.add_parser(sub, reference=_torch_reference)


def _torch_reference(bundle: Any, sizes: Sequence[int]) -> list[Any]:
    from importlib.util import find_spec

    if find_spec("torch") is None:  # a device install: the runtime's rows alone
        return []
    from exporter.reference import torch_variants

    return torch_variants(bundle, sizes)
