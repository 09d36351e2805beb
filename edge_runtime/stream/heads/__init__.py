"""Task heads: one per task, chosen once from the manifest. A new task is a new file here and a line below."""

from __future__ import annotations

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.heads.anomaly import AnomalyHead
from edge_runtime.stream.heads.base import Head
from edge_runtime.stream.heads.classify import ClassifyHead
from edge_runtime.stream.heads.forecast import ForecastHead
from edge_runtime.stream.heads.generate import GenerateHead
from edgernn.errors import BundleError

HEADS: dict[str, type[Head]] = {h.task: h for h in (ClassifyHead, ForecastHead, AnomalyHead, GenerateHead)}


def head_for(manifest: Manifest) -> Head:
    """The head of the manifest's `output.task`."""
    task = manifest.output.task
    if task not in HEADS:
        raise BundleError(f"invalid manifest: output.task {task!r}; supported: {', '.join(HEADS)}")
    return HEADS[task](manifest)


__all__ = ["HEADS", "Head", "head_for"]
