"""Golden vectors: prove that this machine's runtime computes what the exporting laptop computed.

`golden.npz` holds a short raw input stream `x` (L, C) (or tokens (L,)), the same readings scaled by
the manifest (`x_scaled`), and for every artifact `y:<id>` (L, O): its step outputs from zero state at
batch 1, as computed on the laptop (window mode: the window ending at each reading, NaN before the
window fills and between hops). `verify_golden` re-runs them here with this machine's onnxruntime,
TFLite interpreter and NumPy, and checks every artifact's bytes (sha256) first.
NumPy and the standard library only: this runs on the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend
from edge_runtime.bundle.manifest import GOLDEN_FILE, Manifest
from edgernn.errors import BundleError, EdgeRNNError

SCALER_TOLERANCE = 1e-5


def scale(manifest: Manifest, x: np.ndarray) -> np.ndarray:
    """Raw readings -> model input, exactly as the runtime scales them."""
    if manifest.model.tokens:
        return np.asarray(x, np.int64)
    sc = manifest.input.scaler
    if sc is None:
        return np.asarray(x, np.float32)
    return ((np.asarray(x, np.float32) - np.asarray(sc.offset, np.float32)) / np.asarray(sc.scale, np.float32)).astype(
        np.float32
    )


def stream_outputs(manifest: Manifest, backend: Backend, x_scaled: np.ndarray) -> np.ndarray:
    """S streams stepped together from zero state: x (S, L, C) or (S, L) -> y (S, L, O). Window mode:
    the window ending at every hop-th reading once it has filled, NaN elsewhere."""
    s, n = x_scaled.shape[:2]
    y = np.full((s, n, manifest.model.output_size), np.nan, np.float32)
    if manifest.window is not None:
        length, hop = manifest.window.length, manifest.window.hop
        for t in range(length - 1, n, hop):
            y[:, t] = backend.window(np.ascontiguousarray(x_scaled[:, t - length + 1 : t + 1]))
        return y
    state = backend.init_state(s)
    for t in range(n):
        y[:, t], state = backend.step(np.ascontiguousarray(x_scaled[:, t]), state)
    return y


def golden_outputs(manifest: Manifest, backend: Backend, x_scaled: np.ndarray) -> np.ndarray:
    """One stream at batch 1 from zero state: x (L, C) or (L,) -> y (L, O)."""
    return stream_outputs(manifest, backend, x_scaled[None])[0]


@dataclass
class GoldenResult:
    artifact: str
    ok: bool
    message: str
    max_abs_dev: float | None = None
    tolerance: float | None = None
    skipped: bool = False  # this machine cannot run the artifact's backend (not a failure)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def max_deviation(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference; NaN on both sides (no output there) counts 0, NaN on one side inf."""
    if a.shape != b.shape:
        return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


def _altered(bundle: Any, relative: str, sha256: str) -> str:
    """Why a bundle file cannot be trusted ('' when its bytes are the ones the manifest records)."""
    from edge_runtime.bundle.loader import sha256_file

    path = bundle.file(relative)
    if not path.is_file():
        return f"{relative} is missing from the bundle"
    actual = sha256_file(path)
    if actual != sha256:
        return f"bytes altered: {relative} has sha256 {actual[:12]}..., the manifest says {sha256[:12]}..."
    return ""


def verify_golden(bundle: Any) -> list[GoldenResult]:
    """Check every usable artifact of a bundle (a path or an opened `Bundle`) against its golden vectors.

    Per artifact: its sha256 and size against the manifest, then its outputs on this machine against
    `y:<id>` within the artifact's golden tolerance. An artifact whose backend is not installed here is
    reported as skipped. An artifact the exporter measured out of tolerance fails even when this machine
    reproduces it: the bundle's own figures say it is not fit to run. Also checks the manifest's scaler
    against `x_scaled` (the `scaler` entry).
    """
    from edge_runtime.backends import backend_class
    from edge_runtime.bundle.loader import Bundle

    b = bundle if isinstance(bundle, Bundle) else Bundle.open(Path(bundle), verify=False)
    m = b.manifest
    if m.golden.get("sha256"):
        altered = _altered(b, m.golden.get("file", GOLDEN_FILE), m.golden["sha256"])
        if altered:
            return [GoldenResult("golden vectors", False, altered)]
    golden = b.golden()
    for key in ("x", "x_scaled"):
        if key not in golden:
            raise BundleError(f"golden vectors lack {key!r}; re-export the bundle")
    tolerances = m.golden.get("tolerance", {})
    results = []
    dev = max_deviation(scale(m, golden["x"]).astype(np.float64), golden["x_scaled"].astype(np.float64))
    results.append(
        GoldenResult(
            "scaler",
            dev <= SCALER_TOLERANCE,
            "manifest scaler reproduces x_scaled"
            if dev <= SCALER_TOLERANCE
            else f"manifest scaler does not reproduce the golden x_scaled (max abs deviation {dev:.3g})",
            dev,
            SCALER_TOLERANCE,
        )
    )
    for art in m.artifacts:
        if not art.usable:
            continue
        tol = float(tolerances.get(art.id, art.tolerance))
        altered = _altered(b, art.file, art.sha256)
        if altered:
            results.append(GoldenResult(art.id, False, altered, None, tol))
            continue
        key = f"y:{art.id}"
        if key not in golden:
            results.append(GoldenResult(art.id, False, f"golden vectors have no {key!r}", None, tol))
            continue
        cls = backend_class(art.format)
        if not cls.available():
            results.append(
                GoldenResult(art.id, True, f"skipped: the {cls.name} backend is not installed", None, tol, True)
            )
            continue
        try:
            backend = cls(m, art, b.file(art.file))
            try:
                y = golden_outputs(m, backend, golden["x_scaled"])
            finally:
                backend.close()
        except EdgeRNNError as exc:
            results.append(GoldenResult(art.id, False, f"cannot run: {exc}", None, tol))
            continue
        dev = max_deviation(y, golden[key])
        ok = dev <= tol
        msg = (
            f"outputs match (max abs deviation {dev:.2g} <= {tol:.2g})"
            if ok
            else (f"outputs differ from the golden vectors: max abs deviation {dev:.3g} > tolerance {tol:.3g}")
        )
        if ok and art.status != "ok":
            # this machine reproduces the laptop, but what it reproduces was measured worse than allowed
            ok, msg = False, f"reproduced here, but out of tolerance at export: {art.reason or art.status}"
        results.append(GoldenResult(art.id, ok, msg, dev, tol))
    return results
