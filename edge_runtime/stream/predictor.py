"""`Predictor`: a bundle running one reading at a time, each stream's hidden state kept between readings.

    p = Predictor.load("bundles/imu", backend="auto", precision="int8", state_dir="/var/lib/edgernn")
    pred = p.step_one({"ax": 0.1, "ay": -0.3, ...}, t=1732530000.0)    # Prediction, or None if skipped
    preds = p.step_many(readings (N, C), stream_ids)                     # N streams, one backend call
    preds = p.step_block(readings (K, N, C), stream_ids, t (K, N))        # K ticks of N streams, one call
    p.reset("imu-7"); p.save_state(); p.rollout(12)                       # forecast 12 steps, state untouched

Per reading: validate (`guard.py`: bad readings are counted and handled by policy, never raised),
scale with the manifest's statistics, one backend step, postprocess (`heads.py`). Everything the
path needs is precomputed at load. State lives in a `StreamTable` and is checkpointed atomically every
`checkpoint_every` readings and on `close()`; a checkpoint older than `max_state_age` is reset and counted.
Bidirectional bundles run in window mode: a ring buffer of the last T readings per stream, the whole
window re-run every `hop` readings.
"""

from __future__ import annotations

import json
import math
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend, State
from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.manifest import Artifact
from edge_runtime.bundle.select import choose
from edge_runtime.stream.aside import set_aside
from edge_runtime.stream.block import BlockStepping
from edge_runtime.stream.guard import REASONS, InputGuard, Policies
from edge_runtime.stream.heads import head_for
from edge_runtime.stream.names import name_problem
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import DEFAULT_MAX_STREAMS, StreamTable
from edgernn.errors import ConfigError, StateError

DEFAULT_STREAM = "default"
# A saved state older than this is not restored. Ten minutes covers what a device restart costs (a service
# restart takes seconds, a Pi reboot one to two minutes) with room to spare, whatever the sample rate: the
# state carries the model's memory of the stream, and a few minutes' pause in the readings leaves it a better
# start than zeros and a full warm-up. After a longer outage (a power cut overnight, a device moved) the world
# it remembers may be gone, and a fresh start is the honest one. It was once 10 sample periods (0.4 s at
# 25 Hz), the in-stream gap limit, which no restart can meet: the checkpoint was never used.
DEFAULT_STATE_AGE_S = 600.0
_CLOCK_STEP_S = 10.0  # a step back longer than this restarts a stream's clock, when there is no max gap


class Predictor(BlockStepping):
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
        self._guard = InputGuard(m, self.policies)
        self._head = head_for(m)
        cfg = m.model
        self._tokens = cfg.tokens
        self._n_in = self._guard.n
        self._xbuf = np.zeros((1, self._n_in), np.float32)
        self._tiles: dict[
            int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
        ] = {}  # step_many: per-N flat bounds and scaler
        rate = m.input.sample_rate
        gap = self.policies.max_gap if self.policies.max_gap is not None else (10.0 / rate if rate else None)
        self.max_gap = gap
        self._gap = math.inf if gap is None else gap  # compared on the hot path
        # a time further back than this is a clock step (a wall clock set back, the next recording), not
        # one late reading: the stream restarts instead of skipping everything until time catches up
        self._step_back = _CLOCK_STEP_S if gap is None else gap
        self._t_limit = time.time() + self.policies.max_future  # later own times are bad; refreshed when passed
        self.max_state_age = max_state_age if max_state_age is not None else DEFAULT_STATE_AGE_S
        self.restored: tuple[int, float] | None = None  # (streams, age in s) of the checkpoint restored at start
        self.warmup = int((m.warmup or {}).get("readings", 0) or 0)
        if m.mode == "window" and m.window is not None:
            self.warmup = max(self.warmup, m.window.length - 1)  # a window is judged on too little until full
        self._hold_warmup = self.policies.warmup == "hold"
        self._count_steps = self.warmup > 0 or m.mode == "window"
        self._window = m.mode == "window"
        self._win_len = m.window.length if m.window is not None else 0
        self._hop = m.window.hop if m.window is not None else 1
        self._targets = self._head.targets
        self.model_sha = self.artifact.sha256[:12]
        self._model_id = _model_id(bundle)
        self._table = StreamTable(
            cfg.state_names,
            (cfg.num_layers * cfg.directions, cfg.hidden_size),
            self._n_in,
            max(len(self._targets), 1),
            cfg.output_size,
            window=self._win_len,
            max_streams=max_streams,
        )
        self.state_dir = Path(state_dir).expanduser() if state_dir is not None else None
        self.checkpoint_every = max(int(checkpoint_every), 1)
        # False when the caller checkpoints itself (see `checkpoint_due`): `edgernn run --mqtt` first makes
        # the outbox durable, so a checkpoint never gets ahead of the predictions it implies.
        self.autosave = True
        self._since_save = 0
        # counters
        self._readings = 0
        self._predictions = 0
        self._skipped = 0
        self._held_back = 0
        self._resets = 0
        self._stale = 0
        self._checkpoints = 0
        self.bad: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.disk: dict[str, int] = {}  # state_unreadable, state_not_saved: files the disk would not give or take
        self._save_errno: int | None = None
        if self.state_dir is not None:
            self._restore()

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

    # --- one reading ---------------------------------------------------------------------------

    def step_one(self, reading: Any, t: float | None = None, stream: str = DEFAULT_STREAM) -> Prediction | None:
        """Validate, scale, step and postprocess one reading of `stream`; None when it makes no prediction."""
        t0 = time.perf_counter()
        tab = self._table
        s = tab.slot.get(stream)
        self._readings += 1
        if s is None:
            if name_problem(stream) is not None:
                self._refuse_reason("bad_stream")
                return None
            s = tab.add(stream, self._readings)
        else:
            tab.seen[s] = self._readings
        if t is None:
            t = time.time()
        flags: list[str] = []
        last = tab.last_t[s]
        # NaN (a stream's first reading) fails the comparison and takes the slow path
        if not (last <= t <= last + self._gap and t <= self._t_limit) and not self._time_ok(s, t, last, flags):
            return None
        tab.last_t[s] = t
        subst: frozenset[int] | None = None
        vals: list[float] | None = None
        x: np.ndarray
        if self._tokens:
            tok = self._guard.quick_token(reading)
            if tok is None:
                self.bad["unknown_token"] += 1
                self._refuse(s, self.policies.unknown_token == "reset")
                return None
            x = np.array([tok], np.int64)
        else:
            got = self._guard.quick_scaled(reading)
            if got is None:
                v = self._guard.repair(reading, tab.good(s))
                for reason in v.reasons:
                    self.bad[reason] += 1
                flags += v.flags
                if v.values is None:
                    self._refuse(s, v.reset)
                    return None
                vals, subst = v.values, v.substituted
                scaled = self._guard.scale_one(vals)
            else:
                vals, scaled = got
            tab.py_good[s] = (self._readings, vals)
            x = self._xbuf
            x[0] = scaled  # (1, C); backends copy their input, so one buffer serves every call
        if self._window:
            y = self._window_one(s, x)
            if y is None:
                return None
        elif tab.cap == 1:  # the device case: one stream, the table's arrays are its state
            y, tab.state = self.backend.step(x, tab.state)
            if not math.isfinite(y[0, 0]):  # NaN state makes every output NaN; the rest waits for the checkpoint
                self._poisoned(s)
                return None
        else:
            state = tuple(a[:, s : s + 1] for a in tab.state)
            y, new = self.backend.step(x, state)
            if not math.isfinite(y[0, 0]):
                self._poisoned(s)
                return None
            for a, b in zip(tab.state, new, strict=True):
                a[:, s : s + 1] = b
        if self._count_steps:  # readings since reset: only warm-up and window hops need them
            done = int(tab.steps[s])
            tab.steps[s] = done + 1
            if done < self.warmup:
                if self._hold_warmup:
                    self._held_back += 1
                    self._head.held_one(y, tab, s, vals)
                    return None
                flags.append("warming_up")

        # postprocess
        seq = int(tab.seq[s]) + 1
        tab.seq[s] = seq
        pred = Prediction(seq, t, stream, [], model=self.model_sha, flags=flags)
        self._head.one(pred, y, tab, s, vals, subst)
        self._predictions += 1
        self._since_save += 1
        if self.autosave and self.checkpoint_due:
            self.save_state()
        pred.latency_us = (time.perf_counter() - t0) * 1e6
        return pred

    def _time_ok(self, s: int, t: float, last: float, flags: list[str]) -> bool:
        """Slow path for a reading whose time is not in (last, last + max gap], or is its stream's first, or
        lies ahead of the future bound: count a bad time or apply the time policies."""
        if self._bad_time(t):
            self._refuse_reason("bad_time")
            return False
        if last != last or last <= t <= last + self._gap:
            return True  # a stream's first reading, or a future bound that was only stale
        if t < last - self._step_back:
            self.bad["clock_step"] += 1
            flags.append(f"clock_step:{t - last:+.3g}s")
            if self.policies.clock_step == "skip":
                self._skipped += 1
                return False
            self._reset_slot(s)
            flags.append("state_reset")
            return True
        policy = self._time_policy(t - last, flags)
        if policy == "skip":
            self._skipped += 1
            return False
        if policy == "reset":
            self._reset_slot(s)
            flags.append("state_reset")
        return True

    def _time_policy(self, dt: float, flags: list[str]) -> str:
        """Count and flag a reading `dt` seconds after its stream's last one (backwards or a gap); its policy."""
        reason = "backwards" if dt < 0 else "gap"
        self.bad[reason] += 1
        flags.append(f"{reason}:{dt:+.3g}s")
        return str(getattr(self.policies, reason))

    def _bad_time(self, t: float) -> bool:
        """NaN, infinite, or more than `max_future` ahead of this device's clock (refreshing the bound)."""
        try:
            if not math.isfinite(t):
                return True
        except OverflowError:  # an int too large for a float
            return True
        if t > self._t_limit:
            self._t_limit = time.time() + self.policies.max_future
        return bool(t > self._t_limit)

    def _refuse_reason(self, reason: str) -> None:
        """A reading dropped for a reason no policy can change (bad time, bad stream name): counted."""
        self.bad[reason] += 1
        self._skipped += 1

    def _poisoned(self, s: int) -> None:
        """The step left NaN/inf in the output or the state (a value the model cannot take): the stream
        restarts from a zero state instead of carrying NaN into every later prediction and checkpoint."""
        self.bad["bad_state"] += 1
        self._skipped += 1
        self._reset_slot(s)

    def _reset_poisoned(self) -> None:
        """Streams whose state holds NaN/inf (an LSTM cell can saturate to inf while its outputs stay finite)
        restart before a checkpoint, so no restart ever brings the poison back; counted as `bad_state`."""
        tab, n = self._table, len(self._table.ids)
        if all(math.isfinite(float(a[:, :n].sum())) for a in tab.state):
            return
        bad = np.zeros(n, bool)
        for a in tab.state:
            bad |= ~np.isfinite(a[:, :n]).all(axis=(0, 2))
        for s in np.flatnonzero(bad).tolist():
            self._reset_slot(s)
            self.bad["bad_state"] += 1

    def _refuse(self, s: int, reset: bool) -> None:
        """A reading that makes no prediction: counted; the stream is reset when the policy says so."""
        self._skipped += 1
        if reset:
            self._reset_slot(s)

    def _window_one(self, s: int, x: np.ndarray) -> np.ndarray | None:
        tab, length = self._table, self._win_len
        pos = int(tab.win_pos[s])
        tab.win[s, pos] = x[0]
        tab.win[s, pos + length] = x[0]
        tab.win_pos[s] = (pos + 1) % length
        if (int(tab.steps[s]) + 1) % self._hop:
            tab.steps[s] += 1
            return None
        start = (pos + 1) % length
        return self.backend.window(tab.win[s : s + 1, start : start + length])  # (1, T, C) oldest first

    # --- streams -------------------------------------------------------------------------------

    def _reset_slot(self, s: int) -> None:
        self._table.reset(s)
        self._resets += 1

    def reset(self, stream: str | None = None) -> None:
        """Forget a stream's history (or every stream's): zero state, warm-up starts again, and its last
        time, so the next reading may start a new timeline (the next recording, time from 0 again)."""
        tab = self._table
        if stream is None:
            tab.reset_all()
            tab.last_t[:] = np.nan
        elif stream in tab.slot:
            tab.reset(tab.slot[stream])
            tab.last_t[tab.slot[stream]] = np.nan

    def state(self, stream: str = DEFAULT_STREAM) -> State:
        """A copy of one stream's recurrent state: arrays (layers * directions, 1, H)."""
        tab = self._table
        if stream not in tab.slot:
            return self.backend.init_state(1)
        s = tab.slot[stream]
        return tuple(a[:, s : s + 1].copy() for a in tab.state)

    @property
    def streams(self) -> list[str]:
        return list(self._table.ids)

    def rollout(self, k: int, stream: str = DEFAULT_STREAM) -> Prediction:
        """Forecast k steps ahead from the stream's latest reading; the stream's state is not touched.

        Up to the model's horizon the direct forecast is used; beyond it the model is stepped on its own
        forecasts (targets fed back, other features held at their last values).
        """
        self._head.check_rollout(k)
        tab = self._table
        if stream not in tab.slot or not tab.seq[tab.slot[stream]]:
            raise StateError(f"stream {stream!r} has no readings yet; step it before a rollout")
        s = tab.slot[stream]
        values, interval = self._head.rollout(k, tab, s, self._guard, self.backend)
        return Prediction(
            seq=int(tab.seq[s]),
            time=float(tab.last_t[s]),
            stream=stream,
            values=values,
            interval=interval,
            model=self.model_sha,
            flags=["rollout"],
        )

    # --- state checkpoints ---------------------------------------------------------------------

    def seq_floors(self) -> tuple[dict[str, int], bool]:
        """Each stream's last seq as the state checkpoint restored it, and whether that checkpoint was written
        at a clean stop (then these are exactly the last seqs published; after a crash, later ones may exist)."""
        tab = self._table
        return {k: int(tab.seq[i]) for i, k in enumerate(tab.ids)}, tab.final

    @property
    def state_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"state-{self.device}.npz"

    @property
    def checkpoint_due(self) -> bool:
        """`checkpoint_every` readings have passed since the last checkpoint (and there is a state dir)."""
        return self._since_save >= self.checkpoint_every and self.state_dir is not None

    def save_state(self, final: bool = False) -> Path | None:
        """Write every stream's state atomically to the state dir (no-op without one); `final` at a clean stop."""
        path = self.state_path
        if path is None:
            return None
        self._reset_poisoned()
        try:
            self._table.save(path, self._model_id, final)
        except OSError as exc:
            # A full disk or a read-only state dir: predicting goes on, the previous checkpoint (written
            # atomically) stays as it was, and each checkpoint not written is counted (status, summary).
            self._since_save = 0
            self.disk["state_not_saved"] = self.disk.get("state_not_saved", 0) + 1
            if self.disk["state_not_saved"] == 1 or exc.errno != self._save_errno:
                _warn("cannot save the state checkpoint %s (%s); predicting goes on, counted", path, exc.strerror)
            self._save_errno = exc.errno
            return None
        self._since_save = 0
        self._checkpoints += 1
        return path

    def _restore(self) -> None:
        path = self.state_path
        if path is None or not path.exists():
            return
        try:
            saved_at = self._table.load(path, self._model_id)
        except StateError as exc:
            self._stale += 1
            self.disk["state_unreadable"] = self.disk.get("state_unreadable", 0) + 1
            aside = set_aside(path)
            kept = f"; kept as {aside.name}" if aside is not None else ""
            _warn("starting from a fresh state: %s%s", exc, kept)
            return
        age = time.time() - saved_at
        n = len(self._table.ids)
        # the restart's own pause was judged just now, by age: a stream's next reading must not count it as a gap
        self._table.last_t[:] = np.nan
        if age > self.max_state_age:
            _warn("state checkpoint is %.0f s old (max %.0f s): every stream starts fresh", age, self.max_state_age)
            self._table.reset_all()
            self._stale += n
        else:
            self.restored = (n, age)

    def restore_stream(self, stream: str) -> str:
        """Put one stream back to what the state checkpoint holds, as after that device rebooted.

        The other streams keep running. Returns "restored", "stale" (the checkpoint is older than
        `max_state_age`: the stream starts fresh, counted), "no_checkpoint" (never saved: fresh) or
        "unreadable" (the checkpoint does not fit this bundle: fresh, counted).
        """
        tab = self._table
        s = tab.slot[stream] if stream in tab.slot else tab.add(stream)
        path = self.state_path
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
            tab.last_good[s] = np.nan
            tab.py_good[s] = None
            self._stale += outcome in ("stale", "unreadable")
        return outcome

    # --- lifecycle and counters ----------------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """Readings, predictions and bad readings by reason, as `run` prints and publishes them."""
        return {
            "readings": self._readings,
            "predictions": self._predictions,
            "skipped": self._skipped,
            "held_back": self._held_back,
            "state_resets": self._resets,
            "stale_state": self._stale,
            "checkpoints": self._checkpoints,
            "streams": len(self._table.ids),
            "evicted": self._table.evicted,
            "bad": {k: v for k, v in self.bad.items() if v},
            **({"disk": dict(self.disk)} if self.disk else {}),
            "backend": self.backend.name,
            "artifact": self.artifact.id,
        }

    def close(self) -> None:
        """Save state (when there is a state dir) and release the backend."""
        if self.state_dir is not None and self._table.ids:
            self.save_state(final=True)
        self.backend.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warn(msg: str, *args: Any) -> None:
    import logging  # rarely needed: not imported at start-up

    logging.getLogger("edgernn.runtime").warning(msg, *args)


def _model_id(bundle: Bundle) -> str:
    """Identity of the weights a state belongs to: the model shape and every artifact's sha256."""
    m = bundle.manifest
    text = json.dumps(m.model.to_dict(), sort_keys=True) + "|" + "|".join(sorted(a.sha256 for a in m.artifacts))
    return sha256(text.encode()).hexdigest()[:16]
