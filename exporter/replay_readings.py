"""The held-out readings that travel with the model: `heldout.npz` in the bundle, capped in size.

They are the streams the exporter measured every artifact's quality on, in raw units with their ground
truth (the run's `Heldout` arrays: x, y, anomaly, lengths), so `edgernn simulate` can run a bundle whose
features no built-in signal has on the readings the quality table was measured on. Over `cap_bytes`
(uncompressed), every stream keeps its first readings, as the trainer's own cap does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle.loader import sha256_file
from trainer.checkpoint import HELDOUT_FILE, Heldout

CAP_BYTES = 4 * 1024 * 1024


def capped(held: Heldout, cap_bytes: int = CAP_BYTES) -> Heldout:
    """`held` with every stream cut to its first readings so that the arrays fit in `cap_bytes`."""
    per_reading = sum(a[0, 0].nbytes for a in (held.x, held.y, held.anomaly) if a is not None and a.size)
    lengths = held.lengths if held.lengths is not None else np.full(len(held.x), held.x.shape[1], np.int64)
    keep = max(2, cap_bytes // max(per_reading * len(held.x), 1))  # readings per stream
    if keep >= held.x.shape[1]:
        return held
    cut = np.minimum(lengths, keep).astype(np.int64)
    anomaly = None if held.anomaly is None or not held.anomaly.size else held.anomaly[:, :keep]
    return Heldout(
        x=held.x[:, :keep], y=held.y[:, :keep], anomaly=anomaly, lengths=None if (cut == keep).all() else cut
    )


def write_replay(held: Heldout, bundle: Path, cap_bytes: int = CAP_BYTES) -> dict[str, Any]:
    """Write `heldout.npz` into the bundle directory; returns the manifest's `replay` section."""
    small = capped(held, cap_bytes)
    path = bundle / HELDOUT_FILE
    small.save(path)
    section: dict[str, Any] = {
        "file": HELDOUT_FILE,
        "streams": len(small.x),
        "readings": _readings(small),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "cap_bytes": int(cap_bytes),
    }
    if _readings(small) < _readings(held):
        section["trimmed_from"] = _readings(held)
    return section


def _readings(h: Heldout) -> int:
    return int(h.lengths.sum()) if h.lengths is not None else int(h.x.shape[0] * h.x.shape[1])
