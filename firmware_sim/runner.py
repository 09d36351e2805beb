"""Fleets on one SimPy clock: each fleet ticks at its sample period, network faults start and end on time,
and once per simulated second the figures a live view needs are handed to `on_second`.

Used as is by a single-process simulation, and inside each worker process of a sharded one.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import simpy
import simpy.rt

from edge_runtime.publish.netloop import driven_here
from firmware_sim.faults import FaultSpec
from firmware_sim.fleet import FleetRun
from firmware_sim.scenario import Scenario
from firmware_sim.tasks import sim_task_for


@dataclass
class Second:
    """The state of a runner at the end of one simulated second (cumulative counts)."""

    t: float
    wall: float  # time.time()
    produced: int
    predictions: int
    delivered: int  # in-memory: counted by (device, seq); broker: acknowledged by the broker
    outbox_depth: int
    deadline_misses: int
    faults_active: list[str]
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    produced: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


NetworkAction = Callable[[FaultSpec, bool], None]
Pump = Callable[[float], None]  # serve the MQTT sockets and outboxes for up to this many seconds


@contextlib.contextmanager
def publishers_here(device_url: str | None) -> Iterator[Pump | None]:
    """With a real broker, this process's publishers run on this thread, served by the pump it yields.

    A worker hosts hundreds of publishers; on their usual two background threads, most of its CPU went into
    passing the interpreter lock between threads (see `driven_here`). The in-memory broker needs no pump.
    """
    if device_url is None:
        yield None
        return
    with driven_here() as driver:
        yield driver.pump


class _PumpedRealtime(simpy.rt.RealtimeEnvironment):
    """Real time that serves the publishers while it waits for the next event, where SimPy would sleep."""

    def __init__(self, pump: Pump, factor: float) -> None:
        super().__init__(factor=factor, strict=False)
        self._pump = pump

    def step(self) -> None:
        when = self.peek()
        if when == simpy.core.Infinity:
            raise simpy.core.EmptySchedule
        due = self.real_start + (when - self.env_start) * self.factor
        while (left := due - time.monotonic()) > 0:
            self._pump(left)
        simpy.Environment.step(self)


class _PumpedVirtual(simpy.Environment):
    """As fast as it goes, serving the publishers once between events."""

    def __init__(self, pump: Pump) -> None:
        super().__init__()
        self._pump = pump

    def step(self) -> None:
        self._pump(0.0)
        super().step()


class Runner:
    def __init__(
        self,
        fleets: list[FleetRun],
        scenario: Scenario,
        *,
        network: NetworkAction | None,
        on_second: Callable[[Second], None] | None = None,
        pump: Pump | None = None,
    ) -> None:
        """`network(spec, begin)` starts or ends a network fault (None: this runner has none to run).

        `pump`: the publishers run on this thread (`edge_runtime.publish.netloop.driven_here`), served by it.
        """
        self.fleets = fleets
        self.pump = pump
        self.scenario = scenario
        self.network = network
        self.on_second = on_second
        self.series = Series()
        self.outages: list[tuple[float, float, str]] = []
        self.active: set[str] = set()
        self.ticks = 0
        self.late_ticks = 0
        self.max_lag_s = 0.0
        self.interrupted = False
        self.sim_end = 0.0
        self.wall_s = 0.0
        self._wall0 = 0.0
        self._delivered = 0
        # when the network faults start and end (simulated seconds), as their processes compute them
        self._bounds = sorted(
            b
            for f in scenario.faults
            if f.scope == "network" and network is not None
            for b in (f.at, f.at + f.duration)
        )

    def run(self, start_at: float | None = None) -> None:
        """Run to the scenario's end; `start_at` (time.time()) aligns the real-time clocks of several runners."""
        # What exists now (the fleet: its clients, outboxes, model, signals) leaves the garbage collector's sight,
        # so collections scan only what the ticks make. With 1,000 devices on a real broker, full collections
        # over the fleet stalled the clock: 34-89 of 600 ticks late; frozen, 4-5 (two workers, 30 s). A young
        # generation of 10,000 objects instead of 700: every message makes a dozen objects, and collecting
        # every 60 messages took 2.4-3.1 s of each worker's 30 s; now 0.8-1.4 s.
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(10_000, *thresholds[1:])
        try:
            self._run(start_at)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    def _run(self, start_at: float | None) -> None:
        sc = self.scenario
        if start_at is not None:
            while (left := start_at - time.time()) > 0:
                self.pump(left) if self.pump else time.sleep(left)
        env: simpy.Environment
        if self.pump is None:
            env = (
                simpy.rt.RealtimeEnvironment(factor=1.0 / sc.speed, strict=False)
                if sc.realtime
                else simpy.Environment()
            )
        else:
            env = _PumpedRealtime(self.pump, 1.0 / sc.speed) if sc.realtime else _PumpedVirtual(self.pump)
        self._wall0 = time.monotonic()
        for fleet in self.fleets:
            env.process(self._fleet_proc(env, fleet))
        if self.network is not None:
            for spec in sc.faults:
                if spec.scope == "network":
                    env.process(self._network_proc(env, spec))
        env.process(self._monitor_proc(env))
        try:
            env.run(until=sc.duration_s)
        except KeyboardInterrupt:
            self.interrupted = True
        self.sim_end = float(env.now)
        self.wall_s = time.monotonic() - self._wall0
        if self.sim_end > (self.series.t[-1] if self.series.t else 0.0):  # the last (part of a) second
            self.sample(self.sim_end)

    def _fleet_proc(self, env: simpy.Environment, fleet: FleetRun) -> Generator[simpy.Event, Any, None]:
        speed, realtime = self.scenario.speed, self.scenario.realtime
        end = self.scenario.duration_s - 1e-9  # tick k is at exactly k * period; none at the end itself
        blocks = not realtime and self.pump is None  # virtual time, in-memory broker: ticks may go in blocks
        k = 0
        while True:
            t = k * fleet.period
            if t >= end:
                return
            if env.peek() <= env.now:  # the monitor or a network fault at this very instant acts first
                yield env.timeout(0)
            if realtime:
                lag = (time.monotonic() - self._wall0) - t / speed
                self.max_lag_s = max(self.max_lag_s, lag)
                self.late_ticks += lag > fleet.period
            n = fleet.block_len(k, min(self._next_event(t), end)) if blocks else 1
            fleet.tick_block(k, n)
            self.ticks += n
            k += n
            yield env.timeout(max(0.0, k * fleet.period - env.now))

    def _next_event(self, t: float) -> float:
        """The first time after t at which the monitor or a network fault acts (a block of ticks ends before)."""
        later = [b for b in self._bounds if b > t]
        return min(math.floor(t) + 1.0, later[0] if later else math.inf)

    def _network_proc(self, env: simpy.Environment, spec: FaultSpec) -> Generator[simpy.Event, Any, None]:
        assert self.network is not None
        yield env.timeout(spec.at)
        start = float(env.now)
        self.active.add(spec.kind)
        self.network(spec, True)
        yield env.timeout(spec.duration)
        self.network(spec, False)
        self.active.discard(spec.kind)
        self.outages.append((start, float(env.now), spec.kind))

    def _monitor_proc(self, env: simpy.Environment) -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(1.0)
            second = self.sample(float(env.now))
            if self.on_second is not None:
                self.on_second(second)

    def sample(self, t: float) -> Second:
        s = self.series
        memory = [f for f in self.fleets if f.memory]
        if memory:
            self._delivered += sum(f.drain_memory(math.ceil(t) - 1.0) for f in memory)  # the second this one began in
        depths = [f.sample_outbox() for f in self.fleets]
        depth = sum(depths)
        # broker fleets: what the broker acknowledged so far is what left the outboxes
        acked = sum(int(f.published.sum()) - q for f, q in zip(self.fleets, depths, strict=True) if not f.memory)
        delivered = self._delivered + acked
        produced = sum(int(f.produced.sum()) for f in self.fleets)
        s.t.append(t)
        s.produced.append(produced)
        s.delivered.append(delivered)
        s.outbox.append(depth)
        s.wall.append(time.time())
        return Second(
            t=t,
            wall=time.time(),
            produced=produced,
            predictions=sum(int(f.predictions.sum()) for f in self.fleets),
            delivered=delivered,
            outbox_depth=depth,
            deadline_misses=sum(int(f.deadline_misses.sum()) for f in self.fleets),
            faults_active=sorted(self.active),
            latest=self.latest(),
        )

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last prediction of each fleet's sample device (its first), against the ground truth."""
        out = {}
        for f in self.fleets:
            tr = f.trace
            if tr["t"] and f.first_index_of_fleet == 0:
                truth, pred = tr["truth"][-1], tr["pred"][-1]
                sim = sim_task_for(f.task)
                out[f.ids[0]] = {
                    "fleet": f.spec.name,
                    "t": tr["t"][-1],
                    "truth": sim.shown(f.labels, truth, truth),
                    "label": sim.shown(f.labels, pred, None),
                    "score": tr["score"][-1],
                }
        return out

    def finish(self, deadline: float) -> None:
        """Deliver what is queued (every outbox flushed, within `deadline`, time.monotonic()), then close."""
        for fleet in self.fleets:
            for pub in fleet.pubs:
                if pub is not None:
                    pub.flush(max(0.1, deadline - time.monotonic()))
            fleet.drain_memory(None)
        for fleet in self.fleets:
            fleet.close()


class ActionThread:
    """Runs slow network actions (stopping a real broker takes wall time) one at a time, in order, beside the
    clock in real time; inline in virtual time."""

    def __init__(self, background: bool) -> None:
        self.background = background
        self._thread: threading.Thread | None = None

    def __call__(self, action: Callable[[], None]) -> None:
        self.join()
        if self.background:
            self._thread = threading.Thread(target=action, daemon=True)
            self._thread.start()
        else:
            action()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
