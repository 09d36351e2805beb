"""The simulation run: fleets on a SimPy clock, network faults, delivery counting, then the report.

    report = run_simulation(scenario, hook=lambda snap: print(snap.sim_time, snap.delivered))

Virtual time (`simpy.Environment`) runs as fast as the host can; real time (`simpy.rt.RealtimeEnvironment`,
not strict: a slow tick makes the clock lag instead of failing the run, and the lag is reported) serves demos
and live dashboards. Each fleet is one process ticking at its sample period; a monitor process samples
delivery and outbox depth once per simulated second, drives the progress bar and calls the live hook.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import simpy.rt

from edgernn.errors import ConfigError
from firmware_sim.broker import BrokerControl, NetworkProxy, ProxyOutage, SpawnedMosquitto
from firmware_sim.faults import FaultSpec, pick_devices
from firmware_sim.fleet import FleetRun
from firmware_sim.report import Report, build_report
from firmware_sim.scenario import VIRTUAL_EPOCH, Scenario
from firmware_sim.subscriber import CountingSubscriber, Delivered


@dataclass
class LiveSnapshot:
    """What a live view gets once per simulated second (the `hook` of `run_simulation`)."""

    sim_time: float
    wall_s: float
    speed: float  # simulated seconds per wall-clock second so far
    produced: int
    predictions: int
    delivered: int  # in-memory: counted by (device, seq); broker: acknowledged by the broker
    outbox_depth: int
    deadline_misses: int
    faults_active: list[str]
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # the sample device of each fleet


Hook = Callable[[LiveSnapshot], None]


@dataclass
class _Series:
    t: list[float] = field(default_factory=list)
    produced: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        hook: Hook | None = None,
        broker_control: BrokerControl | None = None,
        checkpoint_every: int = 1000,
        workdir: str | Path | None = None,
    ) -> None:
        """`broker_control`: a broker this run may stop and start for outages (its url is the broker's);
        `checkpoint_every`: readings per device between state checkpoints (the runtime's default);
        `workdir`: where device state and outboxes live (default: a temporary directory, removed after)."""
        self.scenario = scenario
        self.hook = hook
        self.control = broker_control
        self.checkpoint_every = checkpoint_every
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="edgernn-sim-"))
        if self.control is not None and scenario.broker.url is None:
            raise ConfigError("a broker_control was given but the scenario has no broker url")
        self.fleets: list[FleetRun] = []
        self.outages: list[tuple[float, float, str]] = []  # (start, end, kind), simulated seconds
        self.series = _Series()
        self.late_ticks = 0
        self.ticks = 0
        self.max_lag_s = 0.0
        self._spawned: SpawnedMosquitto | None = None
        self._proxy: NetworkProxy | None = None
        self._subscriber: CountingSubscriber | None = None
        self._active: set[str] = set()
        self._worker: threading.Thread | None = None
        self.cpu_s: dict[str, float] = {}

    # --- set-up -----------------------------------------------------------------------------------------

    def _build(self) -> None:
        sc = self.scenario
        epoch = time.time() if sc.realtime else VIRTUAL_EPOCH
        first = 0
        for k, spec in enumerate(sc.fleets):
            fleet = FleetRun(
                spec,
                first_index=first,
                duration_s=sc.duration_s,
                seed=sc.seed,
                epoch=epoch,
                workdir=self.workdir / spec.name,
                host_score=sc.host_score,
                checkpoint_every=self.checkpoint_every,
                index=k,
            )
            self.fleets.append(fleet)
            first += spec.devices
        all_ids = [d for f in self.fleets for d in f.ids]
        rng = np.random.default_rng([sc.seed, 7])
        hits = [(spec, pick_devices(spec, all_ids, rng)) for spec in sc.faults if spec.scope == "device"]
        self.fault_devices = {id(spec): ids for spec, ids in hits}
        for fleet in self.fleets:
            fleet.set_faults(hits, sc.seed)

    def _broker(self) -> tuple[str | None, str | None]:
        """(url the devices use, url the counting subscriber uses)."""
        sc = self.scenario
        url = sc.broker.url
        if url is None:
            return None, None
        if self.control is not None:
            url = self.control.url
        elif url == "spawn":
            self._spawned = SpawnedMosquitto(self.workdir / "broker")
            self._spawned.start()
            self.control = self._spawned
            url = self._spawned.url
        kinds = {f.kind for f in sc.faults}
        needs_proxy = "slow-network" in kinds or ("broker-outage" in kinds and self.control is None)
        device_url = url
        if needs_proxy:
            self._proxy = NetworkProxy(url).start()
            device_url = self._proxy.url
            if self.control is None:
                self.control = ProxyOutage(self._proxy)
        return device_url, url

    def _open(self, progress: Any) -> None:
        device_url, sub_url = self._broker()
        if sub_url is not None:
            self._subscriber = CountingSubscriber(sub_url, self.scenario.broker.prefix, self.workdir).start()
        config = None
        if device_url is not None:
            from edge_runtime.mqtt import BrokerConfig

            config = BrokerConfig.load()[0]
        for fleet in self.fleets:
            rng = np.random.default_rng([self.scenario.seed, 11, fleet.index])
            fleet.open_runtime(rng)
            fleet.open_publishers(device_url, self.scenario.broker.prefix, config)
            assert fleet.predictor is not None and fleet.host is not None and fleet.latency is not None
            if self.scenario.progress:
                progress.write(
                    f"{fleet.spec.name}: {fleet.n} x {fleet.spec.profile.title} at {fleet.rate:g}/s, "
                    f"{fleet.predictor.artifact.id}, host step {fleet.host.median_us:.0f} us "
                    f"x {fleet.latency.factor:.1f}",
                    file=sys.stderr,
                )

    # --- the run ----------------------------------------------------------------------------------------

    def run(self) -> Report:
        from tqdm import tqdm

        sc = self.scenario
        cpu0 = _cpu()
        self._build()
        show = sc.progress and sys.stderr.isatty()
        bar = tqdm(total=round(sc.duration_s), unit="sim s", disable=not show, file=sys.stderr, dynamic_ncols=True)
        wall0 = time.monotonic()
        interrupted = False
        try:
            self._open(bar)
            env: simpy.Environment = (
                simpy.rt.RealtimeEnvironment(factor=1.0 / sc.speed, strict=False)
                if sc.realtime
                else simpy.Environment()
            )
            self._wall0 = time.monotonic()
            for fleet in self.fleets:
                env.process(self._fleet_proc(env, fleet))
            for spec in sc.faults:
                if spec.scope == "network":
                    env.process(self._network_proc(env, spec))
            env.process(self._monitor_proc(env, bar))
            try:
                env.run(until=sc.duration_s)
            except KeyboardInterrupt:
                interrupted = True
            sim_end = float(env.now)
            run_wall = time.monotonic() - self._wall0
            delivered = self._finish(bar)
        finally:
            bar.close()
            self._teardown()
        cpu1 = _cpu()
        self.cpu_s = {"simulator": cpu1[0] - cpu0[0], "broker_and_subscriber": cpu1[1] - cpu0[1]}
        report = build_report(self, delivered, sim_end, run_wall, time.monotonic() - wall0, interrupted)
        if sc.report_dir is not None:
            report.write(sc.report_dir)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return report

    def _fleet_proc(self, env: simpy.Environment, fleet: FleetRun) -> Generator[simpy.Event, Any, None]:
        speed = self.scenario.speed
        realtime = self.scenario.realtime
        k = 0
        end = self.scenario.duration_s - 1e-9  # tick k is at exactly k * period; none at the end itself
        while True:
            t = k * fleet.period
            if t >= end:
                return
            if realtime:
                lag = (time.monotonic() - self._wall0) - t / speed
                self.max_lag_s = max(self.max_lag_s, lag)
                self.late_ticks += lag > fleet.period
            fleet.tick(k, t)
            self.ticks += 1
            k += 1
            yield env.timeout(max(0.0, k * fleet.period - env.now))

    def _network_proc(self, env: simpy.Environment, spec: FaultSpec) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(spec.at)
        start = float(env.now)
        self._active.add(spec.kind)
        self._network(spec, True)
        yield env.timeout(spec.duration)
        self._network(spec, False)
        self._active.discard(spec.kind)
        self.outages.append((start, float(env.now), spec.kind))

    def _network(self, spec: FaultSpec, begin: bool) -> None:
        """Start or end a network fault. Stopping a real broker takes wall time: in real time it runs beside
        the clock, so ticks go on (one action at a time, in order)."""
        if self.scenario.broker.url is None:
            if spec.kind == "broker-outage":
                for fleet in self.fleets:
                    fleet.set_online(not begin)
            return
        if spec.kind == "broker-outage":
            control = self.control
            assert control is not None
            action = control.stop if begin else control.start
        else:
            proxy = self._proxy
            assert proxy is not None
            ms = float(spec.params["delay_ms"]) if begin else 0.0

            def action() -> None:
                proxy.delay(ms)

        if self._worker is not None:
            self._worker.join()
        if self.scenario.realtime:
            self._worker = threading.Thread(target=action, daemon=True)
            self._worker.start()
        else:
            action()

    def _monitor_proc(self, env: simpy.Environment, bar: Any) -> Generator[simpy.Event, Any, None]:
        sc = self.scenario
        s = self.series
        delivered = 0
        while True:
            yield env.timeout(1.0)
            t = float(env.now)
            if sc.broker.url is None:
                delivered += sum(f.drain_memory(t - 1.0) for f in self.fleets)
            else:
                delivered = sum(int(f.published.sum()) for f in self.fleets) - sum(
                    f.sample_outbox() for f in self.fleets
                )
            depth = sum(f.sample_outbox() for f in self.fleets)
            produced = sum(int(f.produced.sum()) for f in self.fleets)
            s.t.append(t)
            s.produced.append(produced)
            s.delivered.append(delivered)
            s.outbox.append(depth)
            s.wall.append(time.time())
            wall = time.monotonic() - self._wall0
            bar.update(round(t) - bar.n)
            bar.set_postfix_str(f"x{t / max(wall, 1e-9):.1f} real time, outbox {depth}", refresh=False)
            if self.hook is not None:
                self.hook(self._snapshot(t, wall, produced, delivered, depth))

    def _snapshot(self, t: float, wall: float, produced: int, delivered: int, depth: int) -> LiveSnapshot:
        latest = {}
        for f in self.fleets:
            tr = f.trace
            if tr["t"]:
                truth, pred = tr["truth"][-1], tr["pred"][-1]
                latest[f.ids[0]] = {
                    "fleet": f.spec.name,
                    "t": tr["t"][-1],
                    "truth": f.labels[int(truth)] if f.task == "classify" and truth >= 0 else truth,
                    "label": f.labels[int(pred)] if f.task == "classify" and pred >= 0 else None,
                    "score": tr["score"][-1],
                }
        return LiveSnapshot(
            sim_time=t,
            wall_s=wall,
            speed=t / max(wall, 1e-9),
            produced=produced,
            predictions=sum(int(f.predictions.sum()) for f in self.fleets),
            delivered=delivered,
            outbox_depth=depth,
            deadline_misses=sum(int(f.deadline_misses.sum()) for f in self.fleets),
            faults_active=sorted(self._active),
            latest=latest,
        )

    # --- the end ----------------------------------------------------------------------------------------

    def _finish(self, bar: Any) -> Delivered | None:
        """Deliver what is queued: end outages still on, flush every outbox, let the subscriber catch up."""
        if self._worker is not None:
            self._worker.join()
        for spec in self.scenario.faults:
            if spec.scope == "network" and spec.kind in self._active:
                self._network(spec, False)
                if self._worker is not None:
                    self._worker.join()
        published = sum(int(f.published.sum()) for f in self.fleets)
        deadline = time.monotonic() + 30.0 + published / 2000.0  # bounded: 30 s plus 2k messages a second
        for fleet in self.fleets:
            for pub in fleet.pubs:
                if pub is not None:
                    pub.flush(max(0.1, deadline - time.monotonic()))
            fleet.drain_memory(None)
        delivered = None
        if self._subscriber is not None:
            self._subscriber.wait_for(published, max(5.0, deadline - time.monotonic()))
        for fleet in self.fleets:
            fleet.close()
        if self._subscriber is not None:
            delivered = self._subscriber.finish()
            self._subscriber = None
        return delivered

    def _teardown(self) -> None:
        for fleet in self.fleets:
            with contextlib.suppress(Exception):
                fleet.close()
        if self._subscriber is not None:
            self._subscriber.stop()
        if self._proxy is not None:
            self._proxy.close()
        if self._spawned is not None:
            self._spawned.close()


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its finished children (broker, subscriber, proxy)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run_simulation(
    scenario: Scenario,
    *,
    hook: Hook | None = None,
    broker_control: BrokerControl | None = None,
    checkpoint_every: int = 1000,
    workdir: str | Path | None = None,
) -> Report:
    """Run a scenario to its end and return the report (also written to `scenario.report_dir` when set).

    `hook(snapshot)` is called once per simulated second, for live views; see `LiveSnapshot`.
    """
    sim = Simulation(
        scenario, hook=hook, broker_control=broker_control, checkpoint_every=checkpoint_every, workdir=workdir
    )
    return sim.run()
