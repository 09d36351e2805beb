"""`Checkpoints`: every stream's state saved atomically every `every` readings and at a clean stop, restored
at start; a checkpoint older than `max_state_age` is not used (every stream starts fresh, counted).

The file is the `StreamTable`'s (`state-<device>.npz`); what a disk refuses (full, read-only) is counted
and predicting goes on. A caller that must order checkpoints after something else (`edgernn run --mqtt`
first makes the outbox durable) turns `autosave` off and saves when `due`.
"""

from __future__ import annotations

import json
import math
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle.loader import Bundle
from edge_runtime.stream.aside import set_aside
from edge_runtime.stream.counters import Counters
from edge_runtime.stream.table import StreamTable
from edgernn.errors import StateError

# A saved state older than this is not restored. Ten minutes covers what a device restart costs (a service
# restart takes seconds, a Pi reboot one to two minutes) with room to spare, whatever the sample rate: the
# state carries the model's memory of the stream, and a few minutes' pause in the readings leaves it a better
# start than zeros and a full warm-up. After a longer outage (a power cut overnight, a device moved) the world
# it remembers may be gone, and a fresh start is the honest one. It was once 10 sample periods (0.4 s at
# 25 Hz), the in-stream gap limit, which no restart can meet: the checkpoint was never used.
DEFAULT_STATE_AGE_S = 600.0


class Checkpoints:
    def __init__(
        self,
        table: StreamTable,
        counts: Counters,
        bundle: Bundle,
        path: Path | None,
        every: int = 1000,
        max_state_age: float | None = None,
    ) -> None:
        self.table, self.counts = table, counts
        self.path = path
        self.every = max(int(every), 1)
        self.max_state_age = max_state_age if max_state_age is not None else DEFAULT_STATE_AGE_S
        self.autosave = True  # False: the caller saves when `due` (see the module docstring)
        self.since = 0  # readings since the last checkpoint
        self.restored: tuple[int, float] | None = None  # (streams, age in s) of the checkpoint restored at start
        self._model_id = _model_id(bundle)
        self._errno: int | None = None

    @property
    def due(self) -> bool:
        """`every` readings have passed since the last checkpoint (and there is a state dir)."""
        return self.since >= self.every and self.path is not None

    def tick(self, n: int) -> None:
        """n more readings stepped; saves when one is due and autosave is on."""
        self.since += n
        if self.autosave and self.since >= self.every and self.path is not None:
            self.save()

    def ticks_to_due(self, n: int) -> int:
        """Calls of n readings after which the next autosave falls due (0: none will)."""
        if not self.autosave or self.path is None or n == 0:
            return 0
        return max(1, math.ceil((self.every - self.since) / n))

    def save(self) -> Path | None:
        """Write every stream's state atomically (no-op without a path)."""
        path = self.path
        if path is None:
            return None
        self._reset_poisoned()
        try:
            self.table.save(path, self._model_id)
        except OSError as exc:
            # A full disk or a read-only state dir: predicting goes on, the previous checkpoint (written
            # atomically) stays as it was, and each checkpoint not written is counted (status, summary).
            disk = self.counts.disk
            self.since = 0
            disk["state_not_saved"] = disk.get("state_not_saved", 0) + 1
            if disk["state_not_saved"] == 1 or exc.errno != self._errno:
                _warn("cannot save the state checkpoint %s (%s); predicting goes on, counted", path, exc.strerror)
            self._errno = exc.errno
            return None
        self.since = 0
        self.counts.checkpoints += 1
        return path

    def _reset_poisoned(self) -> None:
        """Streams whose state holds NaN/inf (an LSTM cell can saturate to inf while its outputs stay finite)
        restart before a checkpoint, so no restart ever brings the poison back; counted as `bad_state`."""
        tab, n = self.table, len(self.table.ids)
        if all(math.isfinite(float(a[:, :n].sum())) for a in tab.state):
            return
        bad = np.zeros(n, bool)
        for a in tab.state:
            bad |= ~np.isfinite(a[:, :n]).all(axis=(0, 2))
        for s in np.flatnonzero(bad).tolist():
            tab.restart(s)
            self.counts.bad["bad_state"] += 1

    def restore(self) -> None:
        """Fill the table from the checkpoint at start, if there is one that fits and is young enough."""
        path, tab = self.path, self.table
        if path is None or not path.exists():
            return
        try:
            saved_at = tab.load(path, self._model_id)
        except StateError as exc:
            self.counts.stale += 1
            self.counts.disk["state_unreadable"] = self.counts.disk.get("state_unreadable", 0) + 1
            aside = set_aside(path)
            kept = f"; kept as {aside.name}" if aside is not None else ""
            _warn("starting from a fresh state: %s%s", exc, kept)
            return
        age = time.time() - saved_at
        n = len(tab.ids)
        # the restart's own pause was judged just now, by age: a stream's next reading must not count it as a gap
        tab.last_t[:] = np.nan
        if age > self.max_state_age:
            _warn("state checkpoint is %.0f s old (max %.0f s): every stream starts fresh", age, self.max_state_age)
            tab.reset_all()
            self.counts.stale += n
        else:
            self.restored = (n, age)

    def restore_stream(self, stream: str) -> str:
        """Put one stream back to what the checkpoint holds, as after that device rebooted; see
        `Predictor.restore_stream`."""
        tab = self.table
        s = tab.slot[stream] if stream in tab.slot else tab.add(stream)
        path = self.path
        saved = StreamTable(
            tab.state_names, tab.state_shape, tab.n_features, tab.n_targets, tab.n_outputs, tab.window_len
        )
        outcome = "no_checkpoint"
        if path is not None and path.exists():
            try:
                age = time.time() - saved.load(path, self._model_id)
                if stream in saved.slot:
                    outcome = "restored" if age <= self.max_state_age else "stale"
            except StateError:
                outcome = "unreadable"
        if outcome == "restored":
            tab.copy_slot(saved, saved.slot[stream], s)
        else:
            tab.reset(s)
            tab.last_t[s] = np.nan  # a fresh device: its first reading starts the stream
            tab.own_t[s] = False
            tab.last_good[s] = np.nan
            tab.py_good[s] = None
            self.counts.stale += outcome in ("stale", "unreadable")
        return outcome


def _warn(msg: str, *args: Any) -> None:
    import logging  # rarely needed: not imported at start-up

    logging.getLogger("edgernn.runtime").warning(msg, *args)


def _model_id(bundle: Bundle) -> str:
    """Identity of the weights a state belongs to: the model shape and every artifact's sha256."""
    m = bundle.manifest
    text = json.dumps(m.model.to_dict(), sort_keys=True) + "|" + "|".join(sorted(a.sha256 for a in m.artifacts))
    return sha256(text.encode()).hexdigest()[:16]
