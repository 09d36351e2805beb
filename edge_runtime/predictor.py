"""`Predictor`: a bundle running one reading at a time, each stream's hidden state kept between readings.

    p = Predictor.load("bundles/imu", backend="auto", precision="int8", state_dir="/var/lib/edgernn")
    pred = p.step_one({"ax": 0.1, "ay": -0.3, ...}, t=1732530000.0)    # Prediction, or None if skipped
    preds = p.step_many(readings (N, C), stream_ids)                     # N streams, one backend call
    preds = p.step_block(readings (K, N, C), stream_ids, t (K, N))        # K ticks of N streams, one call
    p.reset("imu-7"); p.save_state(); p.rollout(12)                       # forecast 12 steps, state untouched

Per reading: validate (`validate.py`: bad readings are counted and handled by policy, never raised),
scale with the manifest's statistics, one backend step, postprocess (`postprocess.py`). Everything the
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
from edge_runtime.block import BlockStepping
from edge_runtime.bundle import Bundle
from edge_runtime.manifest import Artifact
from edge_runtime.postprocess import Postprocessor
from edge_runtime.prediction import Prediction
from edge_runtime.select import choose
from edge_runtime.streams import StreamTable
from edge_runtime.validate import REASONS, InputGuard, Policies
from edgernn.errors import BundleError, ConfigError, StateError

DEFAULT_STREAM = "default"
_DEFAULT_STATE_AGE_S = 600.0  # when the bundle has no sample rate to derive one from


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
    ) -> None:
        m = bundle.manifest
        self.bundle, self.manifest, self.backend = bundle, m, backend
        self.artifact: Artifact = backend.artifact
        if not device or not all(ch.isalnum() or ch in "-_." for ch in device) or device.startswith("."):
            raise ConfigError(f"device id {device!r}: use letters, digits, '-', '_' or '.' (it names the state file)")
        self.device = device
        self.policies = policies or Policies()
        self._guard = InputGuard(m, self.policies)
        self._post = Postprocessor(m)
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
        self.max_state_age = max_state_age if max_state_age is not None else (gap or _DEFAULT_STATE_AGE_S)
        self.warmup = int((m.warmup or {}).get("readings", 0) or 0)
        if m.mode == "window" and m.window is not None:
            self.warmup = max(self.warmup, m.window.length - 1)  # a window is judged on too little until full
        self._hold_warmup = self.policies.warmup == "hold"
        self._count_steps = self.warmup > 0 or m.mode == "window"
        self._window = m.mode == "window"
        self._win_len = m.window.length if m.window is not None else 0
        self._hop = m.window.hop if m.window is not None else 1
        task = m.output.task
        self._classes = task in ("classify", "generate")
        self._anomaly = task == "anomaly"
        self._forecast = task in ("forecast", "anomaly")
        feats = self._guard.index
        self._targets = [feats[t] for t in m.output.targets if t in feats] if self._forecast else []
        if self._anomaly and len(self._targets) != len(m.output.targets):
            raise BundleError(f"anomaly targets {m.output.targets} must be input features {list(feats)}")
        self.model_sha = self.artifact.sha256[:12]
        self._model_id = _model_id(bundle)
        self._table = StreamTable(
            cfg.state_names,
            (cfg.num_layers * cfg.directions, cfg.hidden_size),
            self._n_in,
            max(len(self._targets), 1),
            cfg.output_size,
            window=self._win_len,
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
        )

    # --- one reading ---------------------------------------------------------------------------

    def step_one(self, reading: Any, t: float | None = None, stream: str = DEFAULT_STREAM) -> Prediction | None:
        """Validate, scale, step and postprocess one reading of `stream`; None when it makes no prediction."""
        t0 = time.perf_counter()
        tab = self._table
        s = tab.slot.get(stream)
        if s is None:
            s = tab.add(stream)
        if t is None:
            t = time.time()
        self._readings += 1
        flags: list[str] = []
        last = tab.last_t[s]
        if not last <= t <= last + self._gap and last == last and not self._time_ok(s, t, last, flags):
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
        else:
            state = tuple(a[:, s : s + 1] for a in tab.state)
            y, new = self.backend.step(x, state)
            for a, b in zip(tab.state, new, strict=True):
                a[:, s : s + 1] = b
        if self._count_steps:  # readings since reset: only warm-up and window hops need them
            done = int(tab.steps[s])
            tab.steps[s] = done + 1
            if done < self.warmup:
                if self._hold_warmup:
                    self._held_back += 1
                    self._post_anomaly_state(s, y, None, None, self._post.raw(y[0].tolist(), vals))
                    return None
                flags.append("warming_up")

        # postprocess
        post = self._post
        seq = int(tab.seq[s]) + 1
        tab.seq[s] = seq
        label = probability = anomaly = is_anomaly = interval = None
        if self._classes:
            if post.py:
                values, label, probability = post.probabilities(y[0].tolist())
            else:
                values, label, probability = post.probabilities_np(y[0])
        else:
            tab.last_y[s] = y[0]
            values = post.raw(y[0].tolist(), vals)
            if self._anomaly:
                anomaly = self._post_anomaly_state(s, y, vals, subst, values)
                if anomaly is not None:
                    is_anomaly = anomaly >= post.threshold
            else:
                interval = post.interval(values)
        self._predictions += 1
        self._since_save += 1
        if self.autosave and self.checkpoint_due:
            self.save_state()
        return Prediction(
            seq,
            t,
            stream,
            values,
            label,
            probability,
            anomaly,
            is_anomaly,
            interval,
            (time.perf_counter() - t0) * 1e6,
            self.model_sha,
            flags,
        )

    def _post_anomaly_state(
        self,
        s: int,
        y: np.ndarray,
        vals: list[float] | None,
        subst: frozenset[int] | None,
        forecast: list[float] | None = None,
    ) -> float | None:
        """Anomaly score of this reading against the last forecast; remembers this reading's forecast."""
        if not self._anomaly:
            return None
        tab = self._table
        prev = tab.prev_fc[s].tolist()
        fc = forecast if forecast is not None else self._post.raw(y[0].tolist(), vals)
        tab.prev_fc[s] = fc[: len(self._targets)]
        if vals is None or prev[0] != prev[0] or (subst and any(i in subst for i in self._targets)):
            return None  # first reading after a reset, or a target value that was not measured
        return self._post.score([vals[i] for i in self._targets], prev)

    def _time_ok(self, s: int, t: float, last: float, flags: list[str]) -> bool:
        """Slow path for a reading whose time is not in (last, last + max gap]: apply the policy."""
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
        """Forget a stream's history (or every stream's): zero state, warm-up starts again."""
        tab = self._table
        if stream is None:
            tab.reset_all()
        elif stream in tab.slot:
            tab.reset(tab.slot[stream])

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
        if not self._forecast:
            raise ConfigError(
                f"rollout needs a forecast or anomaly model; this bundle's task is {self.manifest.output.task!r}"
            )
        if self._window:
            raise ConfigError("rollout steps the model on its own forecasts; window-mode bundles cannot")
        if k < 1:
            raise ConfigError(f"rollout k must be >= 1, got {k}")
        tab, post = self._table, self._post
        if stream not in tab.slot or not tab.seq[tab.slot[stream]]:
            raise StateError(f"stream {stream!r} has no readings yet; step it before a rollout")
        s = tab.slot[stream]
        n_t, horizon = post.n_targets, self.manifest.output.horizon
        y = tab.last_y[s : s + 1]
        values = post.raw(y[0].tolist(), tab.good(s))
        if k > horizon:
            if len(self._targets) != n_t:
                raise ConfigError(
                    f"rollout beyond the horizon ({horizon}) feeds forecasts back as inputs; the targets "
                    f"{self.manifest.output.targets} are not all input features {self._guard.features}"
                )
            values = values[:n_t]
            state = tuple(a[:, s : s + 1].copy() for a in tab.state)
            raw = np.array(tab.good(s), np.float64)
            while len(values) < k * n_t:
                raw[self._targets] = values[-n_t:]
                x = np.array([self._guard.scale_one(raw.tolist())], np.float32)
                y, state = self.backend.step(x, state)
                values += post.raw(y[0].tolist(), raw)[:n_t]  # delta: the change from the fed-back reading
        values = values[: k * n_t]
        pred = Prediction(
            seq=int(tab.seq[s]),
            time=float(tab.last_t[s]),
            stream=stream,
            values=values,
            model=self.model_sha,
            flags=["rollout"],
        )
        if k <= horizon:
            pred.interval = post.interval(values)
        return pred

    # --- state checkpoints ---------------------------------------------------------------------

    @property
    def state_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"state-{self.device}.npz"

    @property
    def checkpoint_due(self) -> bool:
        """`checkpoint_every` readings have passed since the last checkpoint (and there is a state dir)."""
        return self._since_save >= self.checkpoint_every and self.state_dir is not None

    def save_state(self) -> Path | None:
        """Write every stream's state atomically to the state dir (no-op without one)."""
        path = self.state_path
        if path is None:
            return None
        self._table.save(path, self._model_id)
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
            _warn("starting from a fresh state: %s", exc)
            self._stale += 1
            return
        age = time.time() - saved_at
        if age > self.max_state_age:
            _warn("state checkpoint is %.0f s old (max %.0f s): every stream starts fresh", age, self.max_state_age)
            n = len(self._table.ids)
            self._table.reset_all()
            self._table.last_t[:] = np.nan
            self._stale += n

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
            "bad": {k: v for k, v in self.bad.items() if v},
            "backend": self.backend.name,
            "artifact": self.artifact.id,
        }

    def close(self) -> None:
        """Save state (when there is a state dir) and release the backend."""
        if self.state_dir is not None and self._table.ids:
            self.save_state()
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
