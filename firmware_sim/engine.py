"""The simulation run: fleets on a SimPy clock, network faults, delivery counting, then the report.

    report = run_simulation(scenario, hook=lambda snap: print(snap.sim_time, snap.delivered))

Virtual time (`simpy.Environment`) runs as fast as the host can; real time (`simpy.rt.RealtimeEnvironment`,
not strict: a slow tick makes the clock lag instead of failing the run, and the lag is reported) serves demos
and live dashboards. With `workers > 1` the devices are sharded over processes (see `firmware_sim.worker`),
each with its own clock; this process then owns the broker, the counting subscriber, network faults against
a real broker, the progress bar and the hook, and merges the shards' results into one report.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.errors import ConfigError
from firmware_sim.broker import BrokerControl, NetworkProxy, ProxyOutage, SpawnedMosquitto
from firmware_sim.events import PROGRESS_EVERY_S, Counting, EventCounter, summary_line
from firmware_sim.faults import FaultSpec, pick_devices
from firmware_sim.plots import write_plots
from firmware_sim.report import Report, build_report
from firmware_sim.results import FleetResult
from firmware_sim.runner import ActionThread, Runner, Second, Series, publishers_here
from firmware_sim.scenario import VIRTUAL_EPOCH, Scenario
from firmware_sim.shards import Shards
from firmware_sim.subscriber import CountingSubscriber, Delivered
from firmware_sim.worker import broker_config, build_fleets, memory_network, slices_for


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
# After the run, the count goes on while the broker delivers: it ends when every published prediction has
# arrived, or when none has for this long (a broker with a backlog delivers every few ms; amqtt gives up on a
# subscriber's late PUBACK after 5 s and goes on with the next message).
COUNT_QUIET_S = 10.0


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        hook: Hook | None = None,
        broker_control: BrokerControl | None = None,
        checkpoint_every: int = 1000,
        workdir: str | Path | None = None,
        workers: int | None = None,
    ) -> None:
        """`broker_control`: a broker this run may stop and start for outages (its url is the broker's);
        `checkpoint_every`: readings per device between state checkpoints (the runtime's default);
        `workdir`: where device state and outboxes live (default: a temporary directory, removed after);
        `workers`: processes to shard the devices over (default 1; see `firmware_sim.worker`)."""
        self.scenario = scenario
        self.hook = hook
        self.control = broker_control
        self.checkpoint_every = checkpoint_every
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())  # set in run()
        if self.control is not None and scenario.broker.url is None:
            raise ConfigError("a broker_control was given but the scenario has no broker url")
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = max(1, min(scenario.device_count, workers or 1))
        network = any(f.scope == "network" for f in scenario.faults)
        if self.workers > 1 and network and scenario.broker.url is not None and not scenario.realtime:
            raise ConfigError(
                f"network faults against a real broker in virtual time need one process, got workers={self.workers}: "
                "run in real time (--realtime) or with --workers 1"
            )
        self.outages: list[tuple[float, float, str]] = []
        self.series = Series()
        self.late_ticks = 0
        self.ticks = 0
        self.max_lag_s = 0.0
        self.cpu_s: dict[str, float] = {}
        self.fault_devices: dict[int, list[str]] = {}
        self._spawned: SpawnedMosquitto | None = None
        self._proxy: NetworkProxy | None = None
        self._subscriber: CountingSubscriber | None = None
        self._actions = ActionThread(background=scenario.realtime)
        self._wall0 = 0.0
        self._bar: Any = None
        self._events: EventCounter | None = None
        self._lines = False  # progress as plain lines: stderr is not a terminal (a service, a CI log, a pipe)
        self._next_line = 0.0

    # --- set-up -----------------------------------------------------------------------------------------

    def _hits(self) -> list[tuple[FaultSpec, list[str]]]:
        """The devices each device fault hits, drawn once for the run from its seed."""
        sc = self.scenario
        from firmware_sim.signals import device_id

        ids = [device_id(i) for i in range(sc.device_count)]
        rng = np.random.default_rng([sc.seed, 7])
        hits = [(spec, pick_devices(spec, ids, rng)) for spec in sc.faults if spec.scope == "device"]
        self.fault_devices = {id(spec): d for spec, d in hits}
        return hits

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
        device_url = url
        if "slow-network" in kinds or ("broker-outage" in kinds and self.control is None):
            self._proxy = NetworkProxy(url).start()
            device_url = self._proxy.url
            if self.control is None:
                self.control = ProxyOutage(self._proxy)
        return device_url, url

    def _network(self, spec: FaultSpec, begin: bool) -> None:
        """Start or end a network fault against the real broker (one action at a time, in order)."""
        if spec.kind == "broker-outage":
            control = self.control
            assert control is not None
            self._actions(control.stop if begin else control.start)
        else:
            proxy = self._proxy
            assert proxy is not None
            ms = float(spec.params["delay_ms"]) if begin else 0.0
            self._actions(lambda: proxy.delay(ms))

    # --- the run ----------------------------------------------------------------------------------------

    def run(self) -> Report:
        if self._own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix="edgernn-sim-"))
        try:
            return self._run()
        finally:
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> Report:
        from tqdm import tqdm

        sc = self.scenario
        cpu0 = _cpu()
        hits = self._hits()
        show = sc.progress and sys.stderr.isatty()
        self._lines = sc.progress and not show
        self._next_line = time.monotonic() + PROGRESS_EVERY_S
        self._bar = tqdm(
            total=round(sc.duration_s), unit="sim s", disable=not show, file=sys.stderr, dynamic_ncols=True
        )
        wall0 = time.monotonic()
        counting = Counting()
        self._events = counting.start()
        try:
            device_url, sub_url = self._broker()
            if sub_url is not None:
                self._subscriber = CountingSubscriber(sub_url, sc.broker.prefix, self.workdir).start()
            if self.workers == 1:
                results, sim_end, run_wall, interrupted = self._run_here(hits, device_url)
            else:
                results, sim_end, run_wall, interrupted = Shards(self).run(hits, device_url)
            self._bar.update(round(sim_end) - self._bar.n)
            delivered = self._count_delivered(results)
        finally:
            counting.stop()
            self._say(summary_line(self._events.take(), "the rest of the run"))
            self._bar.close()
            self._teardown()
        cpu1 = _cpu()
        self.cpu_s = {"simulator": cpu1[0] - cpu0[0], "child_processes": cpu1[1] - cpu0[1]}
        report = build_report(self, results, delivered, sim_end, run_wall, time.monotonic() - wall0, interrupted)
        if sc.report_dir is not None:
            report.write(sc.report_dir)
            write_plots(report, sc.report_dir)
        return report

    def _flush_s(self, published_guess: int) -> float:
        return 30.0 + published_guess / 2000.0  # bounded: 30 s plus 2k messages a second

    def _count_limit_s(self, published: int) -> float:
        return 60.0 + published / 50.0  # a broker delivering at least 50 a second is waited for to the end

    def _run_here(
        self, hits: list[tuple[FaultSpec, list[str]]], device_url: str | None
    ) -> tuple[list[FleetResult], float, float, bool]:
        sc = self.scenario
        epoch = time.time() if sc.realtime else VIRTUAL_EPOCH
        fleets = build_fleets(
            sc, slices_for(sc, 1)[0], hits, epoch=epoch, workdir=self.workdir, checkpoint_every=self.checkpoint_every
        )
        config = broker_config(device_url)
        with publishers_here(device_url) as pump:
            try:
                for fleet in fleets:
                    fleet.open_runtime(np.random.default_rng([sc.seed, 11, fleet.index, 0]))
                    fleet.open_publishers(device_url, sc.broker.prefix, config)
                    self._announce(fleet)
                network = memory_network(fleets) if device_url is None else self._network
                runner = Runner(fleets, sc, network=network, on_second=self._second, pump=pump)
                self._wall0 = time.monotonic()
                runner.run()
                self._actions.join()
                self._end_network_faults(runner.active, memory_network(fleets) if device_url is None else self._network)
                published = sum(int(f.published.sum()) for f in fleets)
                runner.finish(time.monotonic() + self._flush_s(published))
            finally:
                for fleet in fleets:
                    with contextlib.suppress(Exception):
                        fleet.close()
        self.series, self.outages = runner.series, runner.outages
        self.ticks, self.late_ticks, self.max_lag_s = runner.ticks, runner.late_ticks, runner.max_lag_s
        return [f.result() for f in fleets], runner.sim_end, runner.wall_s, runner.interrupted

    def _end_network_faults(self, active: set[str], action: Callable[[FaultSpec, bool], None]) -> None:
        """Faults still on when the run ends (interrupted): end them so the outboxes can drain."""
        for spec in self.scenario.faults:
            if spec.scope == "network" and spec.kind in active:
                action(spec, False)
        self._actions.join()

    def _announce(self, fleet: Any) -> None:
        if self.scenario.progress:
            assert fleet.predictor is not None and fleet.host is not None and fleet.latency is not None
            self._bar.write(
                f"{fleet.spec.name}: {fleet.n} x {fleet.spec.profile.title} at {fleet.rate:g}/s, "
                f"{fleet.predictor.artifact.id}, host step {fleet.host.median_us:.0f} us x {fleet.latency.factor:.1f}",
                file=sys.stderr,
            )

    def _say(self, line: str) -> None:
        if line and self.scenario.progress:
            self._bar.write(line, file=sys.stderr)

    def _second(self, s: Second) -> None:
        wall = time.monotonic() - self._wall0
        bar = self._bar
        bar.update(round(s.t) - bar.n)
        bar.set_postfix_str(f"x{s.t / max(wall, 1e-9):.1f} real time, outbox {s.outbox_depth}", refresh=False)
        now = time.monotonic()
        if now >= self._next_line:
            self._next_line = now + PROGRESS_EVERY_S
            if self._lines:
                total = self.scenario.duration_s
                self._say(
                    f"simulated {s.t:.0f} of {total:.0f} s ({100 * s.t / max(total, 1e-9):.0f}%) in {wall:.0f} s, "
                    f"x{s.t / max(wall, 1e-9):.1f} real time; predictions {s.predictions}, delivered {s.delivered}, "
                    f"in the outboxes {s.outbox_depth}"
                    + (f"; faults on: {', '.join(s.faults_active)}" if s.faults_active else "")
                )
            if self._events is not None:
                self._say(summary_line(self._events.take(), f"the last {PROGRESS_EVERY_S:.0f} s"))
        if self.hook is not None:
            self.hook(
                LiveSnapshot(
                    sim_time=s.t,
                    wall_s=wall,
                    speed=s.t / max(wall, 1e-9),
                    produced=s.produced,
                    predictions=s.predictions,
                    delivered=s.delivered,
                    outbox_depth=s.outbox_depth,
                    deadline_misses=s.deadline_misses,
                    faults_active=s.faults_active,
                    latest=s.latest,
                )
            )

    # --- the end ----------------------------------------------------------------------------------------

    def _count_delivered(self, results: list[FleetResult]) -> Delivered | None:
        """With a broker: wait until the subscriber has everything that was published, for as long as the
        broker keeps delivering (`COUNT_QUIET_S`; at most `_count_limit_s`)."""
        if self._subscriber is None:
            return None
        published = sum(int(f.published.sum()) for f in results)
        self._subscriber.wait_for(published, COUNT_QUIET_S, self._count_limit_s(published))
        delivered = self._subscriber.finish()
        self._subscriber = None
        return delivered

    def _teardown(self) -> None:
        self._actions.join()
        if self._subscriber is not None:
            self._subscriber.stop()
        if self._proxy is not None:
            self._proxy.close()
        if self._spawned is not None:
            self._spawned.close()


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its finished children (workers, broker, subscriber)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run_simulation(
    scenario: Scenario,
    *,
    hook: Hook | None = None,
    broker_control: BrokerControl | None = None,
    checkpoint_every: int = 1000,
    workdir: str | Path | None = None,
    workers: int | None = None,
) -> Report:
    """Run a scenario to its end and return the report (also written to `scenario.report_dir` when set).

    `hook(snapshot)` is called once per simulated second, for live views; see `LiveSnapshot`.
    `workers`: processes to shard the devices over (see `Simulation`).
    """
    sim = Simulation(
        scenario,
        hook=hook,
        broker_control=broker_control,
        checkpoint_every=checkpoint_every,
        workdir=workdir,
        workers=workers,
    )
    return sim.run()


__all__ = ["Hook", "LiveSnapshot", "Simulation", "run_simulation"]
