"""`Predictor`: a bundle running one reading at a time, each stream's hidden state kept between readings.

    p = Predictor.load("bundles/imu", backend="auto", precision="int8", state_dir="/var/lib/edgernn")
    pred = p.step_one({"ax": 0.1, "ay": -0.3, ...}, t=1732530000.0)    # Prediction, or None if skipped
    preds = p.step_many(readings (N, C), stream_ids)                     # N streams, one backend call
    preds = p.step_block(readings (K, N, C), stream_ids, t (K, N))        # K ticks of N streams, one call
    p.reset("imu-7"); p.save_state(); p.rollout(12)                       # forecast 12 steps, state untouched

The Predictor wires its parts together and hands each call to the path that does it:

| part                       | job                                                                      |
| -------------------------- | ------------------------------------------------------------------------ |
| `table.StreamTable`        | every stream's recurrent state and per-stream memory, by slot            |
| `guard.InputGuard`         | value checks, repair by policy, scaling (bad readings never raise)       |
| `clock.TimeRules`          | time checks: gaps, steps back, bad times                                 |
| `cadence.Cadence`          | warm-up, window hops and input pooling                                   |
| `heads.Head`               | the task: model outputs -> what a prediction says (one head per task)    |
| `checkpoint.Checkpoints`   | atomic state checkpoints every `checkpoint_every` readings, restore      |
| `counters.Counters`        | readings, predictions, bad readings by reason                            |
| `one`, `many`, `block`     | the stepping paths: one reading, N streams, K ticks of N streams         |

Bidirectional bundles run in window mode: a ring buffer of the last T readings per stream, the whole
window re-run every `hop` readings. A pooling bundle (`pool` K > 1) steps the model once per K readings of a
stream, on their mean; the readings in between make no prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend, State
from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.manifest import Artifact
from edge_runtime.bundle.select import choose
from edge_runtime.stream.batch import PredictionBatch
from edge_runtime.stream.block import BlockStep
from edge_runtime.stream.cadence import Cadence
from edge_runtime.stream.checkpoint import Checkpoints
from edge_runtime.stream.clock import TimeRules
from edge_runtime.stream.counters import Counters
from edge_runtime.stream.guard import InputGuard, Policies
from edge_runtime.stream.heads import head_for
from edge_runtime.stream.many import ManyStep
from edge_runtime.stream.one import OneStep
from edge_runtime.stream.parts import Parts
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import DEFAULT_MAX_STREAMS, StreamTable
from edgernn.errors import ConfigError, StateError

DEFAULT_STREAM = "default"


class Predictor:
    """Runs one bundle artifact over any number of streams; see the module docstring."""

    def __init__(
        self,
        bundle: Bundle,
        backend: Backend,
        *,
        device: str = "dev1",
        state_dir: str | Path | None = None,
        policies: Policies | None = None,
        checkpoint_every: int = 1000,
        max_state_age: float | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        m = bundle.manifest
        self.bundle, self.manifest, self.backend = bundle, m, backend
        self.artifact: Artifact = backend.artifact
        if not device or not all(ch.isalnum() or ch in "-_." for ch in device) or device.startswith("."):
            raise ConfigError(f"device id {device!r}: use letters, digits, '-', '_' or '.' (it names the state file)")
        self.device = device
        self.policies = policies or Policies()
        self.model_sha = self.artifact.sha256[:12]
        self.guard = InputGuard(m, self.policies)
        self.head = head_for(m)
        self.cadence = Cadence.of(m, self.policies)
        self.counts = Counters()
        self.bad = self.counts.bad  # by reason; the dict itself, so callers can diff it around a call
        self.clock = TimeRules(self.policies, m.input.sample_rate, self.bad)
        cfg = m.model
        self.table = StreamTable(
            cfg.state_names,
            (cfg.num_layers * cfg.directions, cfg.hidden_size),
            self.guard.n,
            max(len(self.head.targets), 1),
            cfg.output_size,
            window=self.cadence.window,
            max_streams=max_streams,
        )
        state_dir = Path(state_dir).expanduser() if state_dir is not None else None
        path = None if state_dir is None else state_dir / f"state-{device}.npz"
        self.checkpoints = Checkpoints(self.table, self.counts, bundle, path, checkpoint_every, max_state_age)
        parts = Parts(
            self.table, self.guard, self.clock, self.cadence, backend, self.head, self.counts, self.checkpoints,
            self.model_sha,
        )  # fmt: skip
        self._one, self._many = OneStep(parts), ManyStep(parts)
        self._block = BlockStep(parts, self._many)
        self.checkpoints.restore()

    @classmethod
    def load(
        cls,
        bundle_path: str | Path,
        backend: str = "auto",
        precision: str = "fp32",
        state_dir: str | Path | None = None,
        device: str = "dev1",
        *,
        artifact: str | None = None,
        batch_hint: int = 1,
        verify: bool = True,
        policies: Policies | dict[str, Any] | None = None,
        checkpoint_every: int = 1000,
        max_state_age: float | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> Predictor:
        """Open and verify a bundle, pick the artifact (`auto`: fastest here at `batch_hint`), restore state."""
        bundle = Bundle.open(bundle_path, verify=verify)
        if artifact is not None:
            chosen = bundle.manifest.artifact(artifact)
        else:
            cache = Path(state_dir).expanduser() if state_dir is not None else None
            chosen, _ = choose(bundle, backend, precision, batch=batch_hint, cache_dir=cache)
        if isinstance(policies, dict):
            policies = Policies.from_dict(policies)
        return cls(
            bundle,
            bundle.open_backend(chosen.id),
            device=device,
            state_dir=state_dir,
            policies=policies,
            checkpoint_every=checkpoint_every,
            max_state_age=max_state_age,
            max_streams=max_streams,
        )

    # --- stepping ------------------------------------------------------------------------------

    def step_one(
        self, reading: Any, t: float | None = None, stream: str = DEFAULT_STREAM, received: float | None = None
    ) -> Prediction | None:
        """Validate, scale, step and postprocess one reading of `stream`; None when it makes no prediction.

        `t`: the reading's own time, or None when it has none: then this device's clock when it arrived,
        `received` (default: now). A stream mixing the two stays on its readings' clock (`no_time`, clock.py)."""
        return self._one.step(reading, t, stream, received)

    def step_many(
        self,
        readings: np.ndarray | Sequence[Any],
        stream_ids: Sequence[str],
        t: float | Sequence[float | None] | np.ndarray | None = None,
        received: float | Sequence[float] | np.ndarray | None = None,
    ) -> PredictionBatch:
        """One reading for each of N distinct streams, stepped in one backend call.

        `readings` is an (N, C) array (fastest), or N readings of any form `step_one` takes; `t` one time
        for all, one per reading (a list may hold None: no time of its own), or None for none; `received`
        this device's clock when the readings without a time arrived (one, or one per reading; default: now).
        Returns a list-like of N entries, `Prediction` or None (skipped, held back, between window hops or
        only added to a pool),
        in the order of `stream_ids`.
        """
        return self._many.step(readings, stream_ids, t, received)

    def step_block(
        self, readings: np.ndarray, stream_ids: Sequence[str], t: np.ndarray | Sequence[float]
    ) -> PredictionBatch:
        """Readings (K, N, C) of N distinct streams at K ticks, times (K, N) or one per tick (K,).

        Returns one batch of K * N entries, tick-major: entry k * N + i is reading k of stream i; the
        result of K `step_many` calls (`block.py`).
        """
        return self._block.step(readings, stream_ids, t)

    def questioned(self, x: np.ndarray, dt: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """Which readings the runtime would question, one verdict for every caller that routes readings.

        x (..., C) raw values, dt (...) seconds since the stream's last reading (NaN: its first), t (...)
        their own times or None. A reading is questioned when a value is out of the guard's widened range
        (or NaN), it steps back in time (a `backwards` or `clock_step`), it comes after a `gap`, or its time
        is NaN, infinite or beyond the future bound (`bad_time`). Questioned readings are the ones
        `step_one` and `step_many` send down their per-reading paths (the rest go through unchanged);
        a caller that wants each bad reading attributed steps these with `step_one`. -> (...) bool.
        """
        return self._block.questioned(x, dt, t)

    def rollout(self, k: int, stream: str = DEFAULT_STREAM) -> Prediction:
        """Forecast k steps ahead from the stream's latest reading; the stream's state is not touched.

        Up to the model's horizon the direct forecast is used; beyond it the model is stepped on its own
        forecasts (targets fed back, other features held at their last values).
        """
        self.head.check_rollout(k)
        tab = self.table
        if stream not in tab.slot or np.isnan(tab.good(tab.slot[stream])).all():
            raise StateError(f"stream {stream!r} has no readings yet; step it before a rollout")
        s = tab.slot[stream]
        values, interval = self.head.rollout(k, tab, s, self.guard, self.backend)
        return Prediction(
            seq=0,  # not published: a seq is the publisher's
            time=float(tab.last_t[s]),
            stream=stream,
            values=values,
            interval=interval,
            model=self.model_sha,
            flags=["rollout"],
        )

    # --- streams -------------------------------------------------------------------------------

    def reset(self, stream: str | None = None) -> None:
        """Forget a stream's history (or every stream's): zero state, warm-up starts again, and its last
        time, so the next reading may start a new timeline (the next recording, time from 0 again)."""
        tab = self.table
        if stream is None:
            tab.reset_all()
            tab.last_t[:] = np.nan
            tab.own_t[:] = False
        elif stream in tab.slot:
            tab.reset(tab.slot[stream])
            tab.last_t[tab.slot[stream]] = np.nan
            tab.own_t[tab.slot[stream]] = False

    def state(self, stream: str = DEFAULT_STREAM) -> State:
        """A copy of one stream's recurrent state: arrays (layers * directions, 1, H)."""
        tab = self.table
        if stream not in tab.slot:
            return self.backend.init_state(1)
        s = tab.slot[stream]
        return tuple(a[:, s : s + 1].copy() for a in tab.state)

    @property
    def streams(self) -> list[str]:
        return list(self.table.ids)

    # --- state checkpoints ---------------------------------------------------------------------

    @property
    def state_path(self) -> Path | None:
        return self.checkpoints.path

    @property
    def restored(self) -> tuple[int, float] | None:
        """(streams, age in s) of the checkpoint restored at start; None when none was."""
        return self.checkpoints.restored

    @property
    def max_state_age(self) -> float:
        """Seconds a checkpoint may be old and still be restored (at start and by `restore_stream`)."""
        return self.checkpoints.max_state_age

    @max_state_age.setter
    def max_state_age(self, seconds: float) -> None:
        self.checkpoints.max_state_age = seconds

    @property
    def autosave(self) -> bool:
        """True: a checkpoint is written every `checkpoint_every` readings. False: the caller saves when
        `checkpoint_due` (`edgernn run --mqtt` first makes the outbox durable, so a checkpoint never gets
        ahead of the predictions it implies)."""
        return self.checkpoints.autosave

    @autosave.setter
    def autosave(self, on: bool) -> None:
        self.checkpoints.autosave = on

    @property
    def checkpoint_due(self) -> bool:
        """`checkpoint_every` readings have passed since the last checkpoint (and there is a state dir)."""
        return self.checkpoints.due

    def save_state(self) -> Path | None:
        """Write every stream's state atomically to the state dir (no-op without one)."""
        return self.checkpoints.save()

    def restore_stream(self, stream: str) -> str:
        """Put one stream back to what the state checkpoint holds, as after that device rebooted.

        The other streams keep running. Returns "restored", "stale" (the checkpoint is older than
        `max_state_age`: the stream starts fresh, counted), "no_checkpoint" (never saved: fresh) or
        "unreadable" (the checkpoint does not fit this bundle: fresh, counted).
        """
        return self.checkpoints.restore_stream(stream)

    # --- lifecycle and counters ----------------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """Readings, predictions and bad readings by reason, as `run` prints and publishes them."""
        c, tab = self.counts, self.table
        return {
            "readings": c.readings,
            "predictions": c.predictions,
            "skipped": c.skipped,
            "held_back": c.held_back,
            "state_resets": tab.restarts,
            "stale_state": c.stale,
            "checkpoints": c.checkpoints,
            "streams": len(tab.ids),
            "evicted": tab.evicted,
            "bad": {k: v for k, v in c.bad.items() if v},
            **({"disk": dict(c.disk)} if c.disk else {}),
            "backend": self.backend.name,
            "artifact": self.artifact.id,
        }

    def close(self) -> None:
        """Save state (when there is a state dir) and release the backend."""
        if self.checkpoints.path is not None and self.table.ids:
            self.save_state()
        self.backend.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
