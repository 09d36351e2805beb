"""generate: next-token prediction, a classifier over the input vocabulary (labels default to the tokens)."""

from __future__ import annotations

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.heads.classify import ClassifyHead


class GenerateHead(ClassifyHead):
    task = "generate"
    quality_columns = (("accuracy", "accuracy"), ("perplexity", "perplexity"))

    @classmethod
    def describe(cls, manifest: Manifest) -> str:
        return f"next token of {len(manifest.input.vocabulary)}"

    def label_names(self, manifest: Manifest) -> list[str]:
        return list(manifest.output.labels) or list(manifest.input.vocabulary)
