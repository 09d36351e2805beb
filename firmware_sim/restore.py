"""A rebooted device: its stream's RAM state is lost and restored from the Predictor's last checkpoint.

A fleet's devices share one Predictor (so they are stepped together with `step_many`), whose checkpoint
file holds every stream. A reboot hits one device, so only its stream is put back to what the last
checkpoint holds: state, last time, readings since reset, last good values, last forecast; every other
device keeps running. The runtime has no public call that restores a single stream, so this reads the
checkpoint with the runtime's own `StreamTable.load` and copies the one slot (see the report's request for
a `Predictor.restore(stream)`).

What then happens is the runtime's own policy: the next reading's time is compared with the restored
`last_t`; after a gap longer than `max_gap` the stream is reset (`gap` policy), as on a real device.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.predictor import Predictor
from edge_runtime.streams import _PER_SLOT, StreamTable
from edgernn.errors import StateError


def restore_stream(predictor: Predictor, stream: str) -> str:
    """Drop `stream`'s RAM state and restore it from the checkpoint on disk.

    Returns "restored", "no_checkpoint" (never saved: the stream starts fresh, as a new device does) or
    "unreadable" (the checkpoint does not fit: fresh as well).
    """
    tab = predictor._table  # the runtime's stream table (no public per-stream restore yet)
    if stream not in tab.slot:
        return "no_checkpoint"
    s = tab.slot[stream]
    path = predictor.state_path
    saved: StreamTable | None = None
    unreadable = False
    if path is not None and path.exists():
        saved = StreamTable(
            tab.state_names, tab.state_shape, tab.n_features, tab.n_targets, tab.n_outputs, tab.window_len
        )
        try:
            saved.load(path, predictor._model_id)
        except StateError:
            saved, unreadable = None, True
    if saved is None or stream not in saved.slot:
        tab.reset(s)
        tab.last_t[s] = np.nan  # a fresh device: its first reading starts the stream
        tab.last_good[s] = np.nan
        return "unreadable" if unreadable else "no_checkpoint"
    r = saved.slot[stream]
    for live, disk in zip(tab.state, saved.state, strict=True):
        live[:, s] = disk[:, r]
    for name in _PER_SLOT:
        getattr(tab, name)[s] = getattr(saved, name)[r]
    return "restored"
