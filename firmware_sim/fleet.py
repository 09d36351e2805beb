"""One fleet in a simulation: devices sharing a bundle, profile, rate and signal, stepped together each tick.

Per tick (every sample period of simulated time):

    signal chunk (D, F) -> faults (NaN, stuck, spikes, dropout, clock) -> readings of the devices that are on
      -> Predictor.step_many for the clean readings (one backend call), step_one for the readings a fault
         touched or that the runtime will question (`Predictor.questioned`: so every bad reading is
         attributed to its device by the runtime's own counters)
      -> modelled latency on the profile, deadline = sample period
      -> each prediction through its device's own publisher (`delivery`: outbox, seq, broker or memory)
      -> accuracy / anomaly detection against the signal's ground truth (`books`)

Power cuts and boots are `power`'s; the Predictor's checkpoint (one per fleet) is what a reboot restores the
device's stream from. This file owns the set-up and the stepping; `result()` gathers the parts' figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.publish import Publisher
from edge_runtime.stream.batch import PredictionBatch
from edge_runtime.stream.prediction import Prediction, Publishable
from edge_runtime.stream.predictor import Predictor
from edge_runtime.stream.render import render_batch
from firmware_sim.books import FleetBooks
from firmware_sim.delivery import FleetDelivery
from firmware_sim.faults import FaultSpec
from firmware_sim.injector import DeviceFault, Injector
from firmware_sim.latency import HostTiming, LatencyModel
from firmware_sim.power import FleetPower
from firmware_sim.probe import footprint, host_step_time
from firmware_sim.readings import FleetReadings
from firmware_sim.results import FleetResult
from firmware_sim.scenario import FleetSpec, check_bundle, match_signal
from firmware_sim.signals import device_id
from firmware_sim.signals.replay import bundle_readings, is_replay, load_replay
from firmware_sim.steps import FleetSteps
from firmware_sim.tasks import sim_task_for

SENSOR_FAULT_GRACE_S = 60.0  # after a sensor fault's wrong readings, the model's state takes a while to recover


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
        self.readings = FleetReadings(
            self.signal_kind, self.replay, self.features, self.rate, seed, first_index=first_index, offset=offset,
            ids=self.ids, duration_s=duration_s, params=spec.signal_params,
            targets=list(m.output.targets) if sim_task_for(m.output.task).forecasts else None,
        )  # fmt: skip
        self.chunk = self.readings.chunk
        self.epoch = epoch
        self.workdir = workdir
        self.host_score = host_score
        self.checkpoint_every = checkpoint_every
        self.task = m.output.task
        self.labels = list(m.output.labels)  # the bundle's (the books map the signal's truth onto them)
        # the training range's width per feature: the size of injected spikes and stuck values
        lo = np.asarray(m.input.ranges.get("min", [-np.inf] * len(self.features)), float)
        hi = np.asarray(m.input.ranges.get("max", [np.inf] * len(self.features)), float)
        self.spans = np.where(np.isfinite(hi - lo), np.maximum(hi - lo, 1e-6), 1.0)
        self.predictor: Predictor | None = None
        self.latency: LatencyModel | None = None
        self.host: HostTiming | None = None
        self.footprint: dict[str, float | str] = {}
        self.clock = np.zeros(self.n)  # persistent clock offsets (clock-gap), seconds
        self.last_t = np.full(self.n, np.nan)
        self._closed = False
        self.injector = Injector([], len(self.features), self.spans, np.random.default_rng(seed))
        self.books = FleetBooks(
            self.n, m.output, self.readings.truth_kind, self.readings.labels, targets=self.readings.target is not None
        )
        self.out = FleetDelivery(self.ids, workdir)
        self.power = FleetPower(self.ids)
        self.steps: FleetSteps | None = None  # with the runtime

    # --- set-up ---------------------------------------------------------------------------------------

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
        self.predictor = Predictor.load(
            spec.bundle,
            backend=spec.backend,
            precision=spec.precision,
            state_dir=self.workdir / "runtime",
            device=spec.name,
            batch_hint=self.n,
            checkpoint_every=self.checkpoint_every * self.n,
        )
        # a reboot's restored checkpoint is judged in virtual time by the gap policy at the next reading;
        # the runtime's wall-clock age (how long this host took to simulate the outage) means nothing here
        self.predictor.max_state_age = math.inf
        self.steps = FleetSteps(self.predictor, self.ids, self.labels, self.books, self.power)
        sig = self.readings.calibration()
        self.host = host_step_time(self.predictor, spec.bundle, sig, self.readings.cols, self.epoch, self.period)
        self.latency = LatencyModel(spec.profile, self.host, self.host_score, rng)
        self.footprint = footprint(self.predictor, spec.profile, self.latency)
        self.readings.prefetch()  # the first chunk of signal, before the clock starts (see readings.py)

    def open_publishers(self, url: str | None, prefix: str, config: Any = None) -> None:
        self.out.open(url, prefix, config)

    # --- what the runner reads and drives -------------------------------------------------------------

    @property
    def memory(self) -> bool:
        """In-memory broker (else a real one)."""
        return self.out.memory

    @property
    def pubs(self) -> list[Publisher | None]:
        return self.out.pubs

    @property
    def produced(self) -> np.ndarray:
        return self.books.produced

    @property
    def predictions(self) -> np.ndarray:
        return self.books.predictions

    @property
    def deadline_misses(self) -> np.ndarray:
        return self.books.deadline_misses

    @property
    def published(self) -> np.ndarray:
        return self.out.published

    @property
    def trace(self) -> dict[str, list[float]]:
        """The sample device's predictions against the truth."""
        return self.books.trace

    def set_online(self, online: bool) -> None:
        self.out.set_online(online)

    def drain_memory(self, t: float | None) -> int:
        return self.out.drain_memory(t)

    def sample_outbox(self) -> int:
        return self.out.sample_outbox()

    def flush(self, timeout: float) -> bool:
        return self.out.flush(timeout)

    # --- one tick -------------------------------------------------------------------------------------

    def tick(self, k: int, t: float) -> int:
        """Step every device that is on at tick k (simulated time t); returns readings produced."""
        assert self.predictor is not None and self.steps is not None
        self.out.now = t
        j = self.readings.ready(k)
        if self.injector.reboots:
            self.power.events(t, self.injector.reboots, self.predictor, self.out)
        x = self.readings.x[:, j, :].astype(np.float64)  # (D, F)
        times = self.epoch + t + self.clock  # (D,)
        sampled = self.power.on.copy()
        touched = self.injector.apply(t, x, times, sampled, self.clock) if self.injector.faults else None
        self.books.not_sampled += ~sampled
        all_on = bool(sampled.all())
        dev = np.arange(self.n) if all_on else np.flatnonzero(sampled)
        if len(dev) == 0:
            return 0
        xs, ts = (x, times) if all_on else (x[dev], times[dev])
        # readings the runtime will question: route them through step_one so each is attributed to its device
        last = self.last_t[dev]
        dt = ts - last
        odd = self.predictor.questioned(xs, dt, ts)  # the runtime's own verdict
        if touched is not None:
            odd |= touched[dev]
        fresh = self.power.fresh
        if fresh.any():  # first reading after a boot: see what the runtime makes of the restored state
            odd |= fresh[dev]
        self.last_t[dev] = ts
        self.books.produced[dev] += 1
        if not odd.any():
            ids = self.ids if all_on else [self.ids[i] for i in dev]
            devs, batch, made, lab, score = self.steps.many(dev, xs, ids, ts)
            singles: list[Prediction] = []
        else:
            clean = np.flatnonzero(~odd)
            d1, batch, made, l1, s1 = self.steps.many(
                dev[clean], xs[clean], [self.ids[i] for i in dev[clean]], ts[clean]
            )
            d2, singles, l2, s2 = self.steps.each(dev[odd], xs[odd], ts[odd])
            devs, lab, score = np.concatenate([d1, d2]), np.concatenate([l1, l2]), np.concatenate([s1, s2])
        if not len(devs):
            return len(dev)
        self._account(devs, j, t, batch, made, singles, lab, score)
        return len(dev)

    def block_len(self, k: int, t_limit: float) -> int:
        """Ticks from k that can go through the runtime in one `step_block` call: those before `t_limit`
        (when something else acts: the monitor's second, a network fault), inside the signal chunk, while
        every device is on and no device fault or reboot is due. At least 1."""
        if not self.out.memory or self.power.fresh.any() or not self.power.on.all():
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
        assert self.predictor is not None and self.steps is not None
        period = self.period
        if n == 1:
            return self.tick(k, k * period)
        j = self.readings.ready(k, n)
        t = np.array([(k + i) * period for i in range(n)])  # (K,) as the runner computes each tick's time
        self.out.now = float(t[-1])
        x = self.readings.x[:, j : j + n, :].astype(np.float64).transpose(1, 0, 2)  # (K, D, F)
        times = self.epoch + t[:, None] + self.clock  # (K, D)
        dt = np.diff(times, axis=0, prepend=self.last_t[None])
        if self.predictor.questioned(x, dt, times).any():
            return sum(self.tick(k + i, float(t[i])) for i in range(n))  # a reading the runtime will question
        self.last_t[:] = times[-1]
        self.books.produced += n
        devs, batch, entries, lab, score = self.steps.block(x, times)
        tick = entries // self.n
        self._account(devs, j + tick, t[tick], batch, entries, [], lab, score)
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
        self.books.latencies(devs, lat, self.period * 1e6, one_tick)
        items: list[Publishable] = []
        if batch is not None and len(made):
            items.extend(render_batch(batch, made, lat[: len(made)]))
        for pred, us in zip(singles, lat[len(made) :].tolist(), strict=True):
            pred.latency_us = us
            items.append(pred)
        self.out.publish(devs, items, one_tick)
        row_truth = self.readings.truth[devs, j]
        alarm = self.books.alarms(len(devs), batch, made, singles)
        grace = self.books.fault_memory_readings * self.period + SENSOR_FAULT_GRACE_S
        self.books.score(devs, t, row_truth, lab, alarm, self.injector.sensor_fault(devs, t, grace))
        if self.readings.target is not None:
            target = self.readings.target[devs, j]  # (M, T)
            self.books.score_forecasts(devs, self.readings.first + j, target, batch, made, singles)
        self.books.sample_device(devs, t, row_truth, lab, score)

    def close(self) -> None:
        """Close every publisher (counting what the in-memory broker still delivers) and the Predictor."""
        self.out.close()
        if self.predictor is not None and not self._closed:
            self._closed = True
            self.predictor.close()

    def result(self) -> FleetResult:
        """Everything the report needs, as plain arrays (picklable: a worker process sends it back)."""
        p, spec = self.predictor, self.spec
        counters = p.counters if p is not None else {}
        return FleetResult(
            name=spec.name,
            bundle=str(spec.bundle),
            task=self.task,
            signal_kind=self.signal_kind,
            rate=self.rate,
            labels=list(self.labels),
            scored=self.books.scored,
            threshold=self.books.threshold,
            profile=spec.profile,
            artifact=p.artifact.id if p is not None else "",
            backend=p.backend.name if p is not None else "",
            host=self.host,
            factor=self.latency.factor if self.latency is not None else float("nan"),
            modelled_median_us=self.latency.median_us if self.latency is not None else None,
            footprint=dict(self.footprint),
            warnings=list(self.warnings),
            ids=list(self.ids),
            injected=dict(self.injector.injected),
            runtime_readings=int(counters.get("readings", 0)),
            runtime_predictions=int(counters.get("predictions", 0)),
            **self.books.fields(self.first_index_of_fleet == 0),
            **self.out.fields(),
            **self.power.fields(),
        )
