"""One fleet in a simulation: devices sharing a bundle, profile, rate and signal, stepped together each tick.

Per tick (every sample period of simulated time):

    signal chunk (D, F) -> faults (NaN, stuck, spikes, dropout, clock) -> readings of the devices that are on
      -> Predictor.step_many for the clean readings (one backend call), step_one for the readings a fault
         touched or that the runtime will judge (so every bad reading is attributed to its device by the
         runtime's own counters)
      -> modelled latency on the profile, deadline = sample period
      -> each prediction through its device's own publisher (outbox, seq, broker or memory)
      -> accuracy / anomaly detection against the signal's ground truth

Every device has its own outbox, which outlives its reboots: in RAM (`MemoryOutbox`) with the in-memory
broker, the SQLite file in its own state directory with a real one. The Predictor's checkpoint (one per
fleet) is what a reboot restores the device's stream from.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.batch import PredictionBatch
from edge_runtime.mqtt import MemoryPublisher, OutboxConfig, Publisher, open_publisher
from edge_runtime.mqtt.memory_outbox import MemoryOutbox
from edge_runtime.prediction import Prediction, Publishable
from edge_runtime.predictor import Predictor
from edge_runtime.render import render_batch
from firmware_sim.faults import FaultSpec
from firmware_sim.injector import DeviceFault, Injector
from firmware_sim.latency import HostTiming, LatencyModel, measure_host
from firmware_sim.metrics import AnomalyTracker, LatencyHistogram
from firmware_sim.results import FleetResult, fleet_result
from firmware_sim.scenario import FleetSpec, check_bundle, match_signal
from firmware_sim.signals import Signal, device_id, make_signal, signal_class
from firmware_sim.signals.replay import Replay, bundle_readings, is_replay, load_replay
from firmware_sim.subscriber import SEQ, SeqCounter

# A simulated device's SQLite outbox: the host's disk is not the device's SD card (no fsync), and a group is
# committed every 500 ms instead of 20 ms, so a thousand devices make 2 commits a second each rather than one
# per prediction (the commits were the largest cost of a real-broker fleet, measured; 500 ms instead of 250 ms
# left fewer late ticks with 1,000 devices). It hands predictions to paho up to 0.5 s later; nothing else
# changes (a simulated power cut closes the outbox).
SIM_OUTBOX = OutboxConfig(synchronous="normal", group_interval=0.5, reserve_bytes=0)
CHUNK_S = 60.0  # signals are generated this many seconds ahead (a signal costs per call: 10 s took 1.3-3.5x as long)
CHUNK_MIN = 64  # and at least this many readings (slow signals: fewer, larger calls)
TRACE_MAX = 50_000  # readings of the sample device kept for the predictions-vs-truth plot


class FleetRun:
    def __init__(
        self,
        spec: FleetSpec,
        *,
        first_index: int,
        duration_s: float,
        seed: int,
        epoch: float,
        workdir: Path,
        host_score: float,
        checkpoint_every: int,
        index: int = 0,
        offset: int = 0,
    ) -> None:
        """`offset`: where this fleet's devices start within the fleet (a shard in a worker process holds
        devices offset .. offset + spec.devices - 1 of the fleet); device ids and signals are global."""
        self.spec = spec
        self.index = index
        self.first_index_of_fleet = offset
        self.manifest = check_bundle(spec)
        m = self.manifest
        self.features = list(m.input.features)
        self.signal_kind = match_signal(spec, self.features, replayable=bundle_readings(m, spec.bundle) is not None)
        self.replay = (
            load_replay(self.signal_kind, m, spec.bundle, spec.signal_params) if is_replay(self.signal_kind) else None
        )
        sig_cls: type[Signal] | Replay = self.replay or signal_class(self.signal_kind)
        self.rate = float(spec.rate or (self.replay and self.replay.rate) or m.input.sample_rate or 10.0)
        self.warnings: list[str] = [self.replay.note] if self.replay is not None and self.replay.note else []
        trained = m.input.sample_rate
        if trained and abs(self.rate - trained) > 0.1 * trained:
            self.warnings.append(
                f"devices read {self.rate:g}/s but the bundle was trained at {trained:g}/s: the model sees another "
                "time scale, and the runtime's gap check (10 trained periods by default) may reset the state"
            )
        self.period = 1.0 / self.rate
        self.n = spec.devices
        self.ids = [device_id(first_index + i) for i in range(self.n)]
        self.cols = [sig_cls.channels.index(f) for f in self.features]
        if self.replay is not None:  # each device its recording: by name, else by its place in the fleet
            rep = self.replay
            self.signals: list[Signal] = [
                rep.signal(self.rate, seed, first_index + i, rep.assign(self.ids[i], offset + i)) for i in range(self.n)
            ]
        else:
            self.signals = [
                make_signal(self.signal_kind, self.rate, seed, first_index + i, duration_s, **spec.signal_params)
                for i in range(self.n)
            ]
        self.chunk = max(CHUNK_MIN, round(CHUNK_S * self.rate))
        self.epoch = epoch
        self.workdir = workdir
        self.host_score = host_score
        self.checkpoint_every = checkpoint_every
        self.task = m.output.task
        # ground truth: the signal's labels mapped onto the bundle's, or anomaly flags
        self.labels = list(m.output.labels)
        self._label_index = {name: i for i, name in enumerate(self.labels)}  # Prediction.label -> index
        self.truth_kind = sig_cls.truth_kind
        if self.task == "classify" and self.truth_kind == "label":
            by_name = {name: i for i, name in enumerate(self.labels)}
            self.truth_map: np.ndarray | None = np.array([by_name.get(name, -1) for name in sig_cls.labels])
        else:
            self.truth_map = None
        anomaly = m.output.anomaly or {}
        self.threshold: float | None = float(anomaly["threshold"]) if "threshold" in anomaly else None
        self._alarm_at = np.inf if self.threshold is None else self.threshold  # score >= this: an alarm
        self.scored = (self.task == "classify" and self.truth_map is not None) or (
            self.task == "anomaly" and self.truth_kind == "anomaly"
        )
        # ranges, as the runtime's input guard widens them (for routing suspicious readings to step_one)
        lo = np.asarray(m.input.ranges.get("min", [-np.inf] * len(self.features)), float)
        hi = np.asarray(m.input.ranges.get("max", [np.inf] * len(self.features)), float)
        self.spans = np.where(np.isfinite(hi - lo), np.maximum(hi - lo, 1e-6), 1.0)
        self.predictor: Predictor | None = None
        self.pubs: list[Publisher | None] = []
        self.stores: list[MemoryOutbox] = []  # in-memory broker: each device's outbox, kept across its reboots
        self.latency: LatencyModel | None = None
        self.host: HostTiming | None = None
        self.footprint: dict[str, float | str] = {}
        self._lo, self._hi = lo, hi
        self._buf = np.zeros((self.n, self.chunk, len(self.features)), np.float32)
        self._truth = np.zeros((self.n, self.chunk), np.int64)
        self.on = np.ones(self.n, bool)
        self.clock = np.zeros(self.n)  # persistent clock offsets (clock-gap), seconds
        self.last_t = np.full(self.n, np.nan)
        self.now = 0.0  # simulated time of the last tick
        self.online = True
        self.memory = True  # in-memory publishers (until open_publishers says otherwise)
        self._closed = False
        self.injector = Injector([], len(self.features), self.spans, np.random.default_rng(seed))
        self._init_books()

    # --- set-up ---------------------------------------------------------------------------------------

    def _init_books(self) -> None:
        n = self.n
        self.produced = np.zeros(n, np.int64)
        self.predictions = np.zeros(n, np.int64)
        self.not_sampled = np.zeros(n, np.int64)
        self.deadline_misses = np.zeros(n, np.int64)
        self.published = np.zeros(n, np.int64)
        self.first_seq = np.zeros(n, np.int64)
        self.last_seq = np.zeros(n, np.int64)
        self._peak = [0] * n  # outbox depth right after each publish, the most it reached (a list: per-item speed)
        self.outbox_left = np.zeros(n, np.int64)  # unacknowledged when the run ended
        self.outbox_dropped = np.zeros(n, np.int64)  # deleted by the outbox bounds
        self.reboots = np.zeros(n, np.int64)
        self.restores: dict[str, int] = {}  # at boot: restored | no_checkpoint | unreadable
        self.after_boot: dict[str, int] = {}  # first reading after boot: kept | reset_by_gap | fresh
        self._fresh = np.zeros(n, bool)
        self.dropped: dict[str, np.ndarray] = {}  # reason -> (D,) readings that made no prediction
        self.flagged: dict[str, np.ndarray] = {}  # reason -> (D,) readings predicted despite the problem
        self.unattributed: dict[str, int] = {}  # bad readings the runtime counted in a step_many call
        self.lat_hist = LatencyHistogram(n)
        self.confusion = np.zeros((n, max(1, len(self.labels)), max(1, len(self.labels))), np.int64)
        self.anomaly = AnomalyTracker(n)
        self.trace: dict[str, list[float]] = {"t": [], "truth": [], "pred": [], "score": []}
        self.delivered = SeqCounter()

    def set_faults(self, faults: list[tuple[FaultSpec, list[str]]], seed: int) -> None:
        """Device faults hitting this fleet: (spec, device ids), ids already drawn for the whole run."""
        local = {d: i for i, d in enumerate(self.ids)}
        mine = []
        for spec, ids in faults:
            idx = np.array(sorted(local[d] for d in ids if d in local), np.int64)
            if len(idx):
                mine.append(DeviceFault(spec, idx))
        self.injector = Injector(mine, len(self.features), self.spans, np.random.default_rng([seed, 1]))

    def open_runtime(self, rng: np.random.Generator) -> None:
        """Load the Predictor (one per fleet, every device a stream) and measure the host's step time."""
        spec = self.spec
        state = self.workdir / "runtime"
        self.predictor = Predictor.load(
            spec.bundle,
            backend=spec.backend,
            precision=spec.precision,
            state_dir=state,
            device=spec.name,
            batch_hint=self.n,
            checkpoint_every=self.checkpoint_every * self.n,
        )
        # a reboot's restored checkpoint is judged in virtual time by the gap policy at the next reading;
        # the runtime's wall-clock age (how long this host took to simulate the outage) means nothing here
        self.predictor.max_state_age = math.inf
        self.max_gap = self.predictor.max_gap if self.predictor.max_gap is not None else np.inf
        m = self.predictor.policies.range_margin
        self._lo, self._hi = self._lo - m * self.spans, self._hi + m * self.spans
        self.host = self._measure_host()
        self.latency = LatencyModel(spec.profile, self.host, self.host_score, rng)
        self.footprint = self._footprint()

    def _footprint(self) -> dict[str, float | str]:
        """Peak RSS and start-up of a fresh runtime process with this artifact (the runtime's own probe),
        against the profile's memory; start-up scaled by the profile's factor."""
        from edge_runtime.bench import backend_footprint

        assert self.predictor is not None and self.latency is not None
        fp: dict[str, float | str] = dict(backend_footprint(self.predictor.bundle, self.predictor.artifact.id))
        if "rss_mb" in fp:
            fp["profile_memory_mb"] = float(self.spec.profile.memory_mb)
            fp["memory_share"] = float(fp["rss_mb"]) / self.spec.profile.memory_mb
            fp["start_s_on_profile"] = float(fp["load_s"]) * self.latency.factor
        return fp

    def _measure_host(self, n: int = 300) -> HostTiming:
        """The runtime's own per-reading latency on this host, one reading at a time (batch 1)."""
        assert self.predictor is not None
        calib = Predictor.load(self.spec.bundle, artifact=self.predictor.artifact.id, verify=False)
        if self.replay is not None:
            sig: Signal = self.replay.signal(self.rate, 0, 1_000_000, 0)
        else:
            sig = make_signal(self.signal_kind, self.rate, 0, 1_000_000, None, **self.spec.signal_params)
        x = sig.read(n).x[:, self.cols].astype(np.float64)

        def step(row: np.ndarray, t: float) -> float | None:
            pred = calib.step_one(row, t=self.epoch + t * self.period, stream="calibration")
            return None if pred is None else pred.latency_us

        try:
            return measure_host(step, x)
        finally:
            calib.close()

    def open_publishers(self, url: str | None, prefix: str, config: Any = None) -> None:
        self.memory = url is None
        self._pub_args = (url, prefix, config)
        if self.memory:
            self.stores = [MemoryOutbox(OutboxConfig()) for _ in range(self.n)]
        self.pubs = [self._open_pub(i, url, prefix, config) for i in range(self.n)]

    def _open_pub(self, i: int, url: str | None, prefix: str, config: Any) -> Publisher:
        dev = self.ids[i]
        if url is None:
            pub = MemoryPublisher(dev, prefix=prefix, store=self.stores[i])
            pub.online = self.online
            return pub
        box = SIM_OUTBOX
        cfg = replace(config, client_id=f"edgernn-sim-{dev}") if config is not None else None
        return open_publisher(url, dev, prefix=prefix, state_dir=self.workdir / dev, outbox=box, config=cfg)

    # --- one tick -------------------------------------------------------------------------------------

    def tick(self, k: int, t: float) -> int:
        """Step every device that is on at tick k (simulated time t); returns readings produced."""
        assert self.predictor is not None and self.latency is not None
        self.now = t
        j = k % self.chunk
        if j == 0:
            self._refill()
        self._reboot_events(t)
        x = self._buf[:, j, :].astype(np.float64)  # (D, F)
        times = self.epoch + t + self.clock  # (D,)
        sampled = self.on.copy()
        touched = self.injector.apply(t, x, times, sampled, self.clock) if self.injector.faults else None
        self.not_sampled += ~sampled
        all_on = bool(sampled.all())
        dev = np.arange(self.n) if all_on else np.flatnonzero(sampled)
        if len(dev) == 0:
            return 0
        xs, ts = (x, times) if all_on else (x[dev], times[dev])
        # readings the runtime will question: route them through step_one so each is attributed to its device
        last = self.last_t[dev]
        dt = ts - last
        odd = self._questioned(xs, dt)
        if touched is not None:
            odd |= touched[dev]
        if self._fresh.any():  # first reading after a boot: see what the runtime makes of the restored state
            odd |= self._fresh[dev]
        self.last_t[dev] = ts
        self.produced[dev] += 1
        if not odd.any():
            ids = self.ids if all_on else [self.ids[i] for i in dev]
            devs, batch, made, lab, score = self._step_many(dev, xs, ids, ts)
            singles: list[Prediction] = []
        else:
            clean = np.flatnonzero(~odd)
            d1, batch, made, l1, s1 = self._step_many(
                dev[clean], xs[clean], [self.ids[i] for i in dev[clean]], ts[clean]
            )
            d2, singles, l2, s2 = self._step_each(dev[odd], xs[odd], ts[odd])
            devs, lab, score = np.concatenate([d1, d2]), np.concatenate([l1, l2]), np.concatenate([s1, s2])
        if not len(devs):
            return len(dev)
        self._account(devs, j, t, batch, made, singles, lab, score)
        return len(dev)

    def _questioned(self, x: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """Readings x (..., F) with time since the last dt (...) that the runtime will question: a value out of
        its widened range (or NaN), a step back in time, a gap. (...) bool."""
        return ~np.all((x >= self._lo) & (x <= self._hi), axis=-1) | (dt < 0) | (dt > self.max_gap)

    def block_len(self, k: int, t_limit: float) -> int:
        """Ticks from k that can go through the runtime in one `step_block` call: those before `t_limit`
        (when something else acts: the monitor's second, a network fault), inside the signal chunk, while
        every device is on and no device fault or reboot is due. At least 1."""
        if not self.memory or self._fresh.any() or not self.on.all():
            return 1
        n, most = 1, self.chunk - k % self.chunk
        while n < most and (k + n) * self.period < t_limit:  # the runner's own tick times, float for float
            n += 1
        for f in (*self.injector.faults, *self.injector.reboots):
            if not f.ended:
                while n > 1 and (k + n - 1) * self.period >= f.spec.at:
                    n -= 1
        return n

    def tick_block(self, k: int, n: int) -> int:
        """Ticks k .. k + n - 1 (`block_len` of them), stepped by the runtime in one call when no reading
        needs a per-reading rule, else one `tick` each; the books are the same either way. Returns readings."""
        assert self.predictor is not None
        period = self.period
        if n == 1:
            return self.tick(k, k * period)
        j = k % self.chunk
        if j == 0:
            self._refill()
        t = np.array([(k + i) * period for i in range(n)])  # (K,) as the runner computes each tick's time
        self.now = float(t[-1])
        x = self._buf[:, j : j + n, :].astype(np.float64).transpose(1, 0, 2)  # (K, D, F)
        times = self.epoch + t[:, None] + self.clock  # (K, D)
        dt = np.diff(times, axis=0, prepend=self.last_t[None])
        if self._questioned(x, dt).any():
            return sum(self.tick(k + i, float(t[i])) for i in range(n))  # a reading the runtime will question
        self.last_t[:] = times[-1]
        self.produced += n
        p = self.predictor
        bad0 = dict(p.bad)
        batch = p.step_block(x, self.ids, times)
        self._unattributed(bad0)
        entries = np.flatnonzero(batch.rows >= 0)  # tick-major: entry i * D + d
        devs, tick = entries % self.n, entries // self.n
        if len(entries) < len(batch):
            held = np.flatnonzero(batch.rows < 0) % self.n
            self._count(self.dropped, "window_hop" if self.manifest.mode == "window" else "warmup", held)
        r = batch.rows[entries]
        lab = batch.label_index[r] if batch.label_index is not None else np.full(len(r), -1)
        score = batch.anomaly[r] if batch.anomaly is not None else np.full(len(r), np.nan)
        self._account(devs, j + tick, t[tick], batch, entries, [], np.asarray(lab, np.int64), np.asarray(score, float))
        return n * self.n

    def _account(
        self,
        devs: np.ndarray,
        j: int | np.ndarray,
        t: float | np.ndarray,
        batch: PredictionBatch | None,
        made: np.ndarray,
        singles: list[Prediction],
        lab: np.ndarray,
        score: np.ndarray,
    ) -> None:
        """The predictions of `devs` (M,) at chunk column(s) `j` and time(s) `t`: the batch's entries `made`
        first, then `singles`. Modelled latency, publishing, scoring. One tick (a scalar `t`): each device
        once; a block: per entry, tick-major."""
        assert self.latency is not None
        one_tick = np.ndim(t) == 0
        lat = self.latency.sample(len(devs))  # (M,) µs on the profile
        self.lat_hist.add(devs, lat)
        late = lat > self.period * 1e6
        if one_tick:
            self.predictions[devs] += 1
            self.deadline_misses[devs] += late
        else:
            self.predictions += np.bincount(devs, minlength=self.n)
            self.deadline_misses += np.bincount(devs[late], minlength=self.n)
        items: list[Publishable] = []
        if batch is not None and len(made):
            items.extend(render_batch(batch, made, lat[: len(made)]))
        for pred, us in zip(singles, lat[len(made) :].tolist(), strict=True):
            pred.latency_us = us
            items.append(pred)
        self._publish(devs, items, one_tick)
        row_truth = self._truth[devs, j]
        self._score(devs, t, row_truth, lab, score)
        if len(self.trace["t"]) < TRACE_MAX:
            for k0 in np.flatnonzero(devs == 0).tolist():
                tk = float(t) if one_tick else float(t[k0])  # type: ignore[index]
                self._trace(tk, int(row_truth[k0]), int(lab[k0]), float(score[k0]))

    def _refill(self) -> None:
        for i, sig in enumerate(self.signals):
            c = sig.read(self.chunk)
            self._buf[i] = c.x[:, self.cols]
            self._truth[i] = c.truth

    def _step_many(
        self, dev: np.ndarray, x: np.ndarray, ids: list[str], ts: np.ndarray
    ) -> tuple[np.ndarray, PredictionBatch | None, np.ndarray, np.ndarray, np.ndarray]:
        """-> (devices that made a prediction, the batch, their entries in it, label index, anomaly score)."""
        p = self.predictor
        assert p is not None
        if not len(dev):
            return dev, None, dev, np.zeros(0, np.int64), np.zeros(0)
        bad0 = dict(p.bad)
        batch = p.step_many(x, ids, t=ts)
        self._unattributed(bad0)
        rows = batch.rows
        made = rows >= 0
        if not made.all():
            miss = dev[~made]
            self._count(self.dropped, "window_hop" if self.manifest.mode == "window" else "warmup", miss)
        idx = np.flatnonzero(made)
        r = rows[idx]
        lab = batch.label_index[r] if batch.label_index is not None else np.full(len(idx), -1)
        score = batch.anomaly[r] if batch.anomaly is not None else np.full(len(idx), np.nan)
        return dev[idx], batch, idx, np.asarray(lab, np.int64), np.asarray(score, float)

    def _unattributed(self, before: dict[str, int]) -> None:
        """Bad readings the runtime counted inside a batch call (the fleet routes the ones it foresees to
        step_one, so these are what it did not foresee)."""
        p = self.predictor
        assert p is not None
        if p.bad != before:
            for reason, n in p.bad.items():
                if n != before.get(reason, 0):
                    self.unattributed[reason] = self.unattributed.get(reason, 0) + n - before.get(reason, 0)

    def _step_each(
        self, dev: np.ndarray, x: np.ndarray, ts: np.ndarray
    ) -> tuple[np.ndarray, list[Prediction], np.ndarray, np.ndarray]:
        p = self.predictor
        assert p is not None
        out_dev, preds, lab, score = [], [], [], []
        for d, row, t in zip(dev.tolist(), x, ts.tolist(), strict=True):
            bad0 = dict(p.bad)
            pred = p.step_one(row, t=t, stream=self.ids[d])
            reasons = [r for r, n in p.bad.items() if n != bad0.get(r, 0)]
            one = np.array([d])
            if self._fresh[d]:
                self._fresh[d] = False
                key = "reset_by_gap" if "gap" in reasons else "kept"
                self.after_boot[key] = self.after_boot.get(key, 0) + 1
            if pred is None:
                self._count(self.dropped, reasons[0] if reasons else "warmup", one)
                continue
            for reason in reasons:
                self._count(self.flagged, reason, one)
            out_dev.append(d)
            preds.append(pred)
            lab.append(self._label_index.get(pred.label, -1) if pred.label is not None else -1)
            score.append(np.nan if pred.anomaly is None else pred.anomaly)
        return np.asarray(out_dev, np.int64), preds, np.asarray(lab, np.int64), np.asarray(score, float)

    def _count(self, book: dict[str, np.ndarray], reason: str, dev: np.ndarray) -> None:
        if reason not in book:
            book[reason] = np.zeros(self.n, np.int64)
        np.add.at(book[reason], dev, 1)

    def _publish(self, devs: np.ndarray, items: list[Publishable], distinct: bool = True) -> None:
        """Each item through its device's publisher; `distinct`: one tick (each device once), else a block
        (entries tick-major: a device's items go to its publisher together, in order)."""
        pubs, peak = self.pubs, self._peak
        if distinct:
            seqs = [pubs[d].publish(pred) for d, pred in zip(devs.tolist(), items, strict=True)]
            s = np.asarray(seqs, np.int64)
            self.first_seq[devs] = np.where(self.first_seq[devs] == 0, s, self.first_seq[devs])
            self.last_seq[devs] = s
            self.published[devs] += 1
        else:
            n = self.n
            if len(devs) % n == 0 and len(devs) and bool((devs.reshape(-1, n) == np.arange(n)).all()):
                groups = {d: items[d::n] for d in range(n)}  # every device at every tick: strided
            else:
                groups = {}
                for d, item in zip(devs.tolist(), items, strict=True):
                    groups.setdefault(d, []).append(item)
            for d, group in groups.items():
                seqs = pubs[d].publish_many(group)  # type: ignore[union-attr]
                if self.first_seq[d] == 0:
                    self.first_seq[d] = seqs[0]
                self.last_seq[d] = seqs[-1]
                self.published[d] += len(seqs)
        if not (self.memory and self.online):  # else every outbox was just emptied into the in-memory broker
            for d in np.unique(devs).tolist() if not distinct else devs.tolist():
                depth = pubs[d].depth
                if depth > peak[d]:
                    peak[d] = depth

    def _score(
        self, devs: np.ndarray, t: float | np.ndarray, truth: np.ndarray, lab: np.ndarray, score: np.ndarray
    ) -> None:
        """t: the tick's time, or each entry's (M,) for a block (entries tick-major)."""
        if not self.scored:
            return
        if self.task == "classify":
            assert self.truth_map is not None
            tr = self.truth_map[truth]
            ok = (tr >= 0) & (lab >= 0)
            np.add.at(self.confusion, (devs[ok], tr[ok], lab[ok]), 1)
        else:
            alarm = np.nan_to_num(score, nan=-np.inf) >= self._alarm_at
            if np.ndim(t) == 0:
                self.anomaly.add(devs, float(t), truth.astype(bool), alarm)
                return
            ts = np.asarray(t)
            cuts = np.flatnonzero(np.diff(ts)) + 1  # the tracker runs tick by tick: episodes have an order
            for part in np.split(np.arange(len(ts)), cuts):
                self.anomaly.add(devs[part], float(ts[part[0]]), truth[part].astype(bool), alarm[part])

    def _trace(self, t: float, truth: int, lab: int, score: float) -> None:
        tr = self.trace
        tr["t"].append(t)
        tr["truth"].append(float(self.truth_map[truth]) if self.truth_map is not None else float(truth))
        tr["pred"].append(float(lab))
        tr["score"].append(score)

    # --- faults that touch the runtime and the publisher ----------------------------------------------

    def _reboot_events(self, t: float) -> None:
        for f in self.injector.reboots:
            if not f.started and t >= f.spec.at:
                f.started = True
                for d in f.devices.tolist():
                    self.power_off(d)
            if f.started and not f.ended and t >= f.spec.end:
                f.ended = True
                for d in f.devices.tolist():
                    self.boot(d)

    def power_off(self, d: int) -> None:
        """Power cut: the device stops; its publisher goes without waiting for acknowledgements (the
        outbox on disk keeps what is unacknowledged); RAM state is lost (restored at boot)."""
        self.on[d] = False
        self.reboots[d] += 1
        pub = self.pubs[d]
        if pub is not None:
            self._drain_one(d, pub, None)
            self.outbox_dropped[d] = max(int(self.outbox_dropped[d]), pub.dropped)
            pub.close(timeout=0)
            self._drain_one(d, pub, None)  # what the in-memory broker took on the way down
            self.pubs[d] = None

    def boot(self, d: int) -> None:
        assert self.predictor is not None
        outcome = self.predictor.restore_stream(self.ids[d])
        self.restores[outcome] = self.restores.get(outcome, 0) + 1
        url, prefix, config = self._pub_args
        self.pubs[d] = self._open_pub(d, url, prefix, config)
        self.on[d] = True
        if outcome == "restored":
            self._fresh[d] = True  # the first reading will tell whether the runtime keeps the restored state
        else:
            self.after_boot["fresh"] = self.after_boot.get("fresh", 0) + 1

    def set_online(self, online: bool) -> None:
        """In-memory broker outage: every publisher queues in its outbox until the broker is back."""
        self.online = online
        for pub in self.pubs:
            if isinstance(pub, MemoryPublisher):
                pub.online = online

    # --- delivery (in-memory) and figures ---------------------------------------------------------------

    def drain_memory(self, t: float | None) -> int:
        """Count what the in-memory broker delivered since the last call, by (device, seq), in the simulated
        second t (None: the last tick's); returns how many."""
        n = 0
        for d, pub in enumerate(self.pubs):
            if isinstance(pub, MemoryPublisher):
                n += self._drain_one(d, pub, t)
        return n

    def _drain_one(self, d: int, pub: Publisher, t: float | None) -> int:
        if not isinstance(pub, MemoryPublisher) or not pub.messages:
            return 0
        # one regex pass over the device's predictions since the last drain, not one per message
        text = b"".join([m.payload for m in pub.messages if m.topic.endswith("/prediction")])
        pub.messages.clear()
        seqs = [int(s) for s in SEQ.findall(text)]  # one "seq" per prediction
        self.delivered.add_many(self.ids[d], seqs, int(self.now if t is None else t))
        return len(seqs)

    @property
    def outbox_peak(self) -> np.ndarray:
        return np.asarray(self._peak, np.int64)

    def sample_outbox(self) -> int:
        """Predictions waiting in every outbox of the fleet now."""
        return sum(pub.depth for pub in self.pubs if pub is not None)

    def flush(self, timeout: float) -> bool:
        ok = True
        for pub in self.pubs:
            if pub is not None:
                ok = pub.flush(timeout) and ok
        return ok

    def close(self) -> None:
        """Close every publisher (counting what the in-memory broker still delivers) and the Predictor."""
        for d, pub in enumerate(self.pubs):
            if pub is not None:
                self._drain_one(d, pub, None)
                self.outbox_left[d] = pub.depth
                self.outbox_dropped[d] = max(int(self.outbox_dropped[d]), pub.dropped)
                pub.close(timeout=1.0)
                self._drain_one(d, pub, None)
                self.pubs[d] = None
        if self.predictor is not None and not self._closed:
            self._closed = True
            self.predictor.close()

    def result(self) -> FleetResult:
        """Everything the report needs, as plain arrays (picklable: a worker process sends it back)."""
        return fleet_result(self)
