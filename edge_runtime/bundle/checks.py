"""Every manifest value checked before anything is sized by it: bounds first, then the artifact's own shapes.

A manifest is text anyone can edit; the runtime allocates buffers, state tables and scaler arrays from it.
`check_values` runs when a manifest is parsed (so `Bundle.open`, `edgernn run` and `inspect --verify` all
refuse it with one line naming the value and what is allowed); `check_graph` compares the shapes a loaded
graph declares with the manifest before the backend allocates anything from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgernn.errors import BundleError

if TYPE_CHECKING:
    from edge_runtime.bundle.manifest import Manifest, ScalerSpec

# Bounds a device model stays far inside; past them a typo (or an attack) would allocate gigabytes.
LIMITS = {
    "input_size": 65_536,
    "hidden_size": 65_536,
    "output_size": 1_000_000,
    "num_layers": 64,
    "horizon": 100_000,
    "vocab_size": 10_000_000,
    "embedding_dim": 65_536,
}
MAX_WINDOW = 1_000_000


def _bad(what: str, value: Any, allowed: str) -> BundleError:
    return BundleError(f"invalid manifest: {what} = {_short(value)}; allowed: {allowed}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(what: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(what, value, f"a whole number from {lo} to {hi:,}")
    return value


def _numbers(what: str, values: Any, n: int, *, nonzero: bool = False) -> None:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} value(s)" if isinstance(values, list) else _short(values)
        raise BundleError(f"invalid manifest: {what} has {got}; allowed: {n} numbers, one per {_per(what)}")
    for i, v in enumerate(values):
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (nonzero and v == 0):
            allowed = "a finite number other than 0" if nonzero else "a finite number"
            raise _bad(f"{what}[{i}]", v, allowed)


def _per(what: str) -> str:
    return "target" if what.startswith("output.") else "input feature"


def _scaler(what: str, s: ScalerSpec | None, n: int) -> None:
    if s is not None:
        _numbers(f"{what}.offset", s.offset, n)
        _numbers(f"{what}.scale", s.scale, n, nonzero=True)


def check_values(m: Manifest) -> None:
    """Bounds and lengths of every value the runtime sizes something by; BundleError naming the first bad one."""
    cfg = m.model
    for name, hi in LIMITS.items():
        lo = 0 if name in ("vocab_size", "embedding_dim") or (name == "input_size" and cfg.tokens) else 1
        _int(f"model.{name}", getattr(cfg, name), lo, hi)
    n_in = len(m.input.features)
    if not cfg.tokens:
        _scaler("input.scaler", m.input.scaler, n_in)
        for key in ("min", "max"):
            if key in (m.input.ranges or {}):
                _numbers(f"input.ranges.{key}", m.input.ranges[key], n_in)
    rate = m.input.sample_rate
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf):
        raise _bad("input.sample_rate", rate, "readings per second, a finite number > 0, or null")
    out = m.output
    _int("output.horizon", out.horizon, 1, LIMITS["horizon"])
    if out.labels and len(out.labels) != cfg.output_size:
        raise BundleError(
            f"invalid manifest: output.labels has {len(out.labels)} labels; allowed: {cfg.output_size} "
            "(model.output_size)"
        )
    if out.task == "forecast" and out.targets and len(out.targets) * out.horizon != cfg.output_size:
        raise BundleError(
            f"invalid manifest: {len(out.targets)} output.targets x horizon {out.horizon} != model.output_size "
            f"{cfg.output_size}; allowed: targets x horizon = output_size"
        )
    if out.targets:
        _scaler("output.inverse", out.inverse, len(out.targets))
    if out.interval and "half_width" in out.interval:
        _numbers("output.interval.half_width", out.interval["half_width"], cfg.output_size)
    if m.window is not None:
        length = _int("window.length", m.window.length, 1, MAX_WINDOW)
        _int("window.hop", m.window.hop, 1, length)
    _int("warmup.readings", (m.warmup or {}).get("readings", 0) or 0, 0, 10**9)
    if m.mode == "stream":
        want = [cfg.num_layers * cfg.directions, "batch", cfg.hidden_size]
        names = [s.name for s in m.state]
        if names != list(cfg.state_names):
            raise _bad("state names", names, f"{list(cfg.state_names)} for a {cfg.cell} model")
        for s in m.state:
            if list(s.shape) != want:
                raise _bad(f"state {s.name!r} shape", s.shape, f"{want} (layers x directions, batch, hidden_size)")


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
