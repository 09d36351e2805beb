"""`Cadence`: which readings of a stream make a prediction, from the manifest and the warm-up policy.

The first `warmup` readings after a reset are judged on too little history: flagged `warming_up`, or held
back (`hold`). A window-mode bundle (bidirectional) keeps a ring of the last `window` readings per stream
and re-runs the whole window every `hop` readings; its warm-up lasts until the window is full.
A pooling bundle (`pool` K > 1) steps the model once per K readings after a reset, on their mean: the
readings in between only add to the stream's pool and make no prediction, as readings between window hops
make none. Its warm-up (readings in the manifest) is counted in model steps, K readings each.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.guard import Policies


@dataclass(frozen=True)
class Cadence:
    warmup: int  # readings after a reset judged on too little
    hold: bool  # warm-up predictions are held back, not published
    window: int  # window mode: readings per window (0: a streaming model)
    hop: int  # window mode: re-run every hop readings
    pool: int = 1  # readings averaged into one model step (1: every reading is a step)

    @classmethod
    def of(cls, manifest: Manifest, policies: Policies) -> Cadence:
        warmup = int((manifest.warmup or {}).get("readings", 0) or 0)
        w = manifest.window if manifest.mode == "window" else None
        if w is not None:
            warmup = max(warmup, w.length - 1)  # a window is judged on too little until full
        pool = manifest.pool
        warmup = -(-warmup // pool)  # model steps: a step is judged on too little while its readings are
        return cls(
            warmup, policies.warmup == "hold", w.length if w is not None else 0, w.hop if w is not None else 1, pool
        )

    @property
    def count_steps(self) -> bool:
        """Readings since reset are needed: only warm-up and window hops use them."""
        return self.warmup > 0 or self.window > 0
