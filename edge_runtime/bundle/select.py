"""Which artifact a predictor runs: the one asked for, or with `auto` the fastest on this machine.

`auto` times every usable artifact of the requested precision whose backend is installed (a short
burst of steps at the expected batch size) and keeps the choice in a small JSON cache, keyed by the
artifacts' sha256, this machine and the batch size, so it is measured once, not at every start.
"""

from __future__ import annotations

import json
import os
import time
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_runtime.backends import available_backends, canonical_format
from edge_runtime.bundle.manifest import Artifact
from edgernn.errors import ConfigError

if TYPE_CHECKING:
    from edge_runtime.backends.base import Backend
    from edge_runtime.bundle.loader import Bundle

CACHE_FILE = "backend-choice.json"
_TIME_BUDGET_S = 0.15  # per candidate


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgernn"


def _fits_batch(a: Artifact, batch: int) -> bool:
    return a.batch is None or batch in a.batch or (batch > 1 and max(a.batch) > 1)


def candidates(bundle: Bundle, fmt: str | None, precision: str, batch: int = 1) -> list[Artifact]:
    """Usable artifacts of this precision (and format), best first: in tolerance, then fitting the batch."""
    found = bundle.usable_artifacts(fmt, precision)
    found.sort(key=lambda a: (a.status != "ok", not _fits_batch(a, batch), a.batch is not None, a.id))
    return found


def choose(
    bundle: Bundle, backend: str, precision: str, *, batch: int = 1, cache_dir: Path | None = None
) -> tuple[Artifact, dict[str, float]]:
    """The artifact to run, and the per-step times measured for the choice (empty when none were)."""
    if backend != "auto":
        fmt = canonical_format(backend)
        found = candidates(bundle, fmt, precision, batch)
        if not found:
            have = ", ".join(a.id for a in bundle.manifest.artifacts if a.usable) or "none"
            raise ConfigError(f"this bundle has no usable {fmt} {precision} artifact; usable: {have}")
        return found[0], {}
    installed = set(available_backends())
    runnable = [a for a in candidates(bundle, None, precision, batch) if a.format in installed]
    # auto never runs an artifact the exporter measured out of tolerance: asking for it by id or by
    # backend is the user's choice (and `edgernn run` warns), picking it silently is not
    found = [a for a in runnable if a.status == "ok"]
    if not found:
        have = ", ".join(a.id for a in bundle.manifest.artifacts if a.usable and a.status == "ok") or "none"
        rejected = [a.id for a in runnable if a.status != "ok"]
        why = f"; out of tolerance, never picked by auto: {', '.join(rejected)}" if rejected else ""
        raise ConfigError(
            f"no usable {precision} artifact in tolerance with an installed backend (installed: "
            f"{', '.join(sorted(installed))}; in tolerance: {have}{why}); name one with --artifact to run it anyway"
        )
    # one artifact per format: the best fitting one
    per_format: dict[str, Artifact] = {}
    for a in found:
        per_format.setdefault(a.format, a)
    if len(per_format) == 1:
        return next(iter(per_format.values())), {}
    key = _cache_key(list(per_format.values()), batch)
    cache_path = (cache_dir or user_cache_dir()) / CACHE_FILE
    cached = _read_cache(cache_path).get(key)
    if cached and cached.get("artifact") in {a.id for a in per_format.values()}:
        return bundle.manifest.artifact(cached["artifact"]), dict(cached.get("us", {}))
    times = {a.id: measure(bundle.open_backend(a.id), batch) for a in per_format.values()}
    best = min(times, key=lambda k: times[k])
    _write_cache(cache_path, key, {"artifact": best, "us": times, "at": time.time(), "batch": batch})
    return bundle.manifest.artifact(best), times


def tolerance_warning(artifact: Artifact) -> str:
    """One line for a user who asked for an artifact the exporter measured out of tolerance ('' when it is ok)."""
    if artifact.status == "ok":
        return ""
    return (
        f"warning: {artifact.id} is out of tolerance ({artifact.reason or artifact.status}); its outputs differ "
        "from the trained model more than the bundle allows (`--backend auto` never picks it)"
    )


def measure(backend: Backend, batch: int = 1, budget_s: float = _TIME_BUDGET_S) -> float:
    """Median µs of one step (or window) at `batch`, after a warm-up; closes the backend."""
    m = backend.manifest
    try:
        x = example_input(m, batch)
        state = backend.init_state(batch)
        window = m.mode == "window"

        def call() -> None:
            if window:
                backend.window(x)
            else:
                backend.step(x, state)

        for _ in range(5):
            call()
        samples: list[float] = []
        deadline = time.perf_counter() + budget_s
        while len(samples) < 7 or (time.perf_counter() < deadline and len(samples) < 2000):
            t0 = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t0)
        return float(np.median(samples) * 1e6)
    finally:
        backend.close()


def example_input(manifest: Any, batch: int) -> np.ndarray:
    """Zeros shaped like one step's (or one window's) input for `batch` streams."""
    cfg = manifest.model
    lead: tuple[int, ...] = (batch,) if manifest.mode != "window" else (batch, manifest.window.length)
    if cfg.tokens:
        return np.zeros(lead, np.int64)
    return np.zeros((*lead, cfg.input_size), np.float32)


def _cache_key(arts: list[Artifact], batch: int) -> str:
    import platform

    machine = [platform.node(), platform.machine(), platform.python_version(), str(batch)]
    parts = [*sorted(a.sha256 for a in arts), *machine]
    return sha256("|".join(parts).encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Best effort: a read-only disk means measuring again next start, not failing."""
    try:
        data = _read_cache(path)
        data[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass
