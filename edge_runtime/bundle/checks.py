"""Every manifest value checked before anything is sized by it: bounds first, then the artifact's own shapes.

A manifest is text anyone can edit; the runtime allocates buffers, state tables and scaler arrays from it.
The values are checked where the manifest is parsed (`manifest.check_values`: `Bundle.open`, `edgernn run` and
`inspect --verify` all refuse a bad one with one line naming the value and what is allowed); here,
`check_graph` compares the shapes a loaded graph declares with the manifest before the backend allocates
anything from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge_runtime.bundle.manifest import Manifest
from edgernn.errors import BundleError


def check_graph(m: Manifest, artifact_id: str, file: str, shapes: Mapping[str, Sequence[Any]]) -> None:
    """The shapes a graph declares (`x`, `<state>_in`, `y`; symbolic dims as str or None) against the manifest."""
    cfg = m.model
    window = m.mode == "window"
    want: dict[str, list[int | None]] = {"y": [None, cfg.output_size]}
    if not cfg.tokens:
        want["x"] = [None, None, cfg.input_size] if window else [None, cfg.input_size]
    if not window:
        for name in cfg.state_names:
            want[f"{name}_in"] = [cfg.num_layers * cfg.directions, None, cfg.hidden_size]
    for name, expected in want.items():
        got = shapes.get(name)
        if got is None:
            continue
        got = list(got)
        fixed = [d if isinstance(d, int) and d > 0 else None for d in got]  # symbolic or -1: any size
        differ = len(got) != len(expected) or any(
            e is not None and g is not None and g != e for g, e in zip(fixed, expected, strict=True)
        )
        if differ:
            shown = ["?" if e is None else e for e in expected]
            raise BundleError(
                f"artifact {artifact_id!r}: {file} declares {name} of shape {got}, the manifest's model needs "
                f"{shown} (model: {cfg.cell}, {cfg.num_layers} layer(s), hidden_size {cfg.hidden_size}, "
                f"input_size {cfg.input_size}, output_size {cfg.output_size})"
            )
