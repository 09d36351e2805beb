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
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn import errors
from edgernn.errors import ConfigError, EdgeRNNError
from firmware_sim.broker import BrokerControl, NetworkProxy, ProxyOutage, SpawnedMosquitto
from firmware_sim.faults import FaultSpec, pick_devices
from firmware_sim.report import Report, build_report
from firmware_sim.results import FleetResult
from firmware_sim.runner import ActionThread, Runner, Second, Series
from firmware_sim.scenario import VIRTUAL_EPOCH, Scenario
from firmware_sim.subscriber import CountingSubscriber, Delivered
from firmware_sim.worker import ShardJob, build_fleets, memory_network, slices_for


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
        self._links: _Links

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
        self._bar = tqdm(
            total=round(sc.duration_s), unit="sim s", disable=not show, file=sys.stderr, dynamic_ncols=True
        )
        wall0 = time.monotonic()
        try:
            device_url, sub_url = self._broker()
            if sub_url is not None:
                self._subscriber = CountingSubscriber(sub_url, sc.broker.prefix, self.workdir).start()
            if self.workers == 1:
                results, sim_end, run_wall, interrupted = self._run_here(hits, device_url)
            else:
                results, sim_end, run_wall, interrupted = self._run_shards(hits, device_url)
            self._bar.update(round(sim_end) - self._bar.n)
            delivered = self._count_delivered(results)
        finally:
            self._bar.close()
            self._teardown()
        cpu1 = _cpu()
        self.cpu_s = {"simulator": cpu1[0] - cpu0[0], "workers_broker_and_subscriber": cpu1[1] - cpu0[1]}
        report = build_report(self, results, delivered, sim_end, run_wall, time.monotonic() - wall0, interrupted)
        if sc.report_dir is not None:
            report.write(sc.report_dir)
        return report

    def _flush_s(self, published_guess: int) -> float:
        return 30.0 + published_guess / 2000.0  # bounded: 30 s plus 2k messages a second

    def _run_here(
        self, hits: list[tuple[FaultSpec, list[str]]], device_url: str | None
    ) -> tuple[list[FleetResult], float, float, bool]:
        sc = self.scenario
        epoch = time.time() if sc.realtime else VIRTUAL_EPOCH
        fleets = build_fleets(
            sc, slices_for(sc, 1)[0], hits, epoch=epoch, workdir=self.workdir, checkpoint_every=self.checkpoint_every
        )
        config = _broker_config(device_url)
        for fleet in fleets:
            fleet.open_runtime(np.random.default_rng([sc.seed, 11, fleet.index, 0]))
            fleet.open_publishers(device_url, sc.broker.prefix, config)
            self._announce(fleet)
        network = memory_network(fleets) if device_url is None else self._network
        runner = Runner(fleets, sc, network=network, on_second=self._second)
        self._wall0 = time.monotonic()
        try:
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

    def _second(self, s: Second) -> None:
        wall = time.monotonic() - self._wall0
        bar = self._bar
        bar.update(round(s.t) - bar.n)
        bar.set_postfix_str(f"x{s.t / max(wall, 1e-9):.1f} real time, outbox {s.outbox_depth}", refresh=False)
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

    # --- sharded over worker processes --------------------------------------------------------------------

    def _run_shards(
        self, hits: list[tuple[FaultSpec, list[str]]], device_url: str | None
    ) -> tuple[list[FleetResult], float, float, bool]:
        from multiprocessing.connection import Listener

        sc = self.scenario
        epoch = time.time() if sc.realtime else VIRTUAL_EPOCH
        plan = slices_for(sc, self.workers)
        guess = int(sc.device_count / len(plan) * sc.duration_s * max(f.rate or 10.0 for f in sc.fleets))
        jobs = [
            ShardJob(
                w,
                sc,
                slices,
                hits,
                device_url,
                sc.broker.prefix,
                self.checkpoint_every,
                self.workdir / f"shard{w}",
                epoch,
                self._flush_s(guess),
            )
            for w, slices in enumerate(plan)
        ]
        authkey = os.urandom(16)
        env = {**os.environ, "EDGERNN_SIM_AUTHKEY": authkey.hex(), "PYTHONPATH": _pythonpath()}
        procs: list[subprocess.Popen[bytes]] = []
        with Listener(("127.0.0.1", 0), authkey=authkey) as listener:
            host, port = listener.address
            try:
                for _ in jobs:
                    cmd = [sys.executable, "-m", "firmware_sim.worker", f"{host}:{port}"]
                    procs.append(subprocess.Popen(cmd, env=env))
                self._links = _Links(self._accept(listener, procs, timeout=120.0), procs)
                for conn, job in zip(self._links.conns, jobs, strict=True):
                    conn.send(job)
                self._await("ready", timeout=120.0 + 2.0 * sc.device_count)
                if sc.progress:
                    self._bar.write(f"{sc.device_count} devices over {len(jobs)} worker processes", file=sys.stderr)
                start_at = time.time() + 0.5
                for conn in self._links.conns:
                    conn.send(("go", start_at))
                return self._collect(start_at)
            finally:
                for p in procs:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.terminate()
                        p.wait(timeout=5)

    def _accept(self, listener: Any, procs: list[subprocess.Popen[bytes]], timeout: float) -> list[Any]:
        """Every worker's connection (bounded wait; a worker that dies first is an error)."""
        conns: list[Any] = []

        def accept_all() -> None:
            for _ in procs:
                conns.append(listener.accept())

        accepting = threading.Thread(target=accept_all, daemon=True)
        accepting.start()
        deadline = time.monotonic() + timeout
        while accepting.is_alive():
            accepting.join(0.2)
            dead = [p.returncode for p in procs if p.poll() not in (None, 0)]
            if dead:
                raise errors.EdgeRNNError(f"a worker process exited before connecting (exit code {dead[0]})")
            if time.monotonic() > deadline:
                raise errors.EdgeRNNError(f"worker processes did not connect within {timeout:.0f} s")
        return conns

    def _await(self, kind: str, timeout: float) -> None:
        """Wait (bounded) for one `kind` message from every worker; a worker's error is raised here."""
        got: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(got) < len(self._links.conns):
            msg = self._links.get(deadline)
            if msg[0] == kind:
                got.add(msg[1])

    def _collect(self, start_at: float) -> tuple[list[FleetResult], float, float, bool]:
        """Run the parent's side until every shard is done: network faults on the wall clock (real time),
        the per-second aggregate for the bar and the hook, then the shards' results."""
        sc = self.scenario
        self._wall0 = time.monotonic() + max(0.0, start_at - time.time())
        latest: dict[int, Second] = {}
        seen: dict[float, dict[int, Second]] = {}
        net = None
        if sc.realtime and sc.broker.url is not None and any(f.scope == "network" for f in sc.faults):
            net = _NetworkClock(self, start_at)
        done: dict[int, tuple[Any, ...]] = {}
        # real time: bounded by the run's length; virtual time: as long as the workers live and work
        deadline = time.monotonic() + sc.duration_s / sc.speed + 600.0 if sc.realtime else math.inf
        interrupted = False
        n = len(self._links.conns)
        while len(done) < n:
            if net is not None:
                net.step()
            try:
                msg = self._links.get(deadline)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True  # the workers got it too: they stop their clocks, flush and report
                continue
            if msg[0] == "second":
                latest[msg[1]] = msg[2]
                row = seen.setdefault(msg[2].t, {})
                row[msg[1]] = msg[2]
                if len(row) == n:  # every shard has reached this second
                    self._second(_sum_seconds(list(row.values()), net.active if net else set()))
                    del seen[msg[2].t]
            elif msg[0] == "done":
                done[msg[1]] = msg
        if net is not None:
            net.finish()
        shards = [done[i] for i in sorted(done)]
        results = _merge_results([m[2] for m in shards], len(sc.fleets))
        stats = [m[4] for m in shards]
        self.series = _sum_series([m[3] for m in shards])
        self.ticks = sum(s["ticks"] for s in stats)
        self.late_ticks = sum(s["late_ticks"] for s in stats)
        self.max_lag_s = max(s["max_lag_s"] for s in stats)
        self.outages = net.outages if net is not None else stats[0]["outages"]
        sim_end = min(s["sim_end"] for s in stats)
        return results, sim_end, max(s["wall_s"] for s in stats), any(s["interrupted"] for s in stats)

    # --- the end ----------------------------------------------------------------------------------------

    def _count_delivered(self, results: list[FleetResult]) -> Delivered | None:
        """With a broker: wait (bounded) until the subscriber has everything that was published."""
        if self._subscriber is None:
            return None
        published = sum(int(f.published.sum()) for f in results)
        self._subscriber.wait_for(published, max(5.0, self._flush_s(published)))
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


class _Links:
    """The parent's ends of the workers' connections: the next message from any of them, in arrival order."""

    def __init__(self, conns: list[Any], procs: list[subprocess.Popen[bytes]]) -> None:
        self.conns = conns
        self.procs = procs
        self._open = list(conns)  # a worker closes its end after "done"
        self._pending: list[tuple[Any, ...]] = []

    def get(self, deadline: float) -> tuple[Any, ...]:
        from multiprocessing.connection import wait

        while not self._pending:
            ready: list[Any] = wait(self._open, timeout=0.5)
            for conn in ready:
                try:
                    msg = conn.recv()
                    self._pending.append(msg)
                    if msg[0] in ("done", "error"):
                        self._open.remove(conn)
                except EOFError:
                    code = next((p.poll() for p in self.procs if p.poll() not in (None, 0)), None)
                    raise errors.EdgeRNNError(f"a worker process died (exit code {code})") from None
            if not ready and time.monotonic() > deadline:
                raise errors.EdgeRNNError("worker processes did not answer in time")
        msg = self._pending.pop(0)
        if msg[0] == "error":
            raise _error(msg[2], msg[3])
        return msg


def _pythonpath() -> str:
    """This checkout first, so `python -m firmware_sim.worker` runs the same code as this process."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


class _NetworkClock:
    """The parent's own schedule of network faults against the real broker, on the wall clock."""

    def __init__(self, sim: Simulation, start_at: float) -> None:
        self.sim = sim
        self.start_at = start_at
        self.speed = sim.scenario.speed
        events: list[tuple[float, int, FaultSpec, bool]] = []
        for i, spec in enumerate(f for f in sim.scenario.faults if f.scope == "network"):
            events += [(spec.at, i, spec, True), (spec.end, i, spec, False)]
        self.events = sorted(events, key=lambda e: (e[0], e[1], not e[3]))
        self.active: set[str] = set()
        self.outages: list[tuple[float, float, str]] = []
        self._began: dict[int, float] = {}

    def step(self) -> None:
        now = (time.time() - self.start_at) * self.speed
        while self.events and self.events[0][0] <= now:
            t, i, spec, begin = self.events.pop(0)
            self.sim._network(spec, begin)
            if begin:
                self.active.add(spec.kind)
                self._began[i] = t
            else:
                self.active.discard(spec.kind)
                self.outages.append((self._began.pop(i, t), t, spec.kind))

    def finish(self) -> None:
        """End what is still on (the run ended first); the shards flush after it."""
        for t, i, spec, begin in self.events:
            if not begin and i in self._began:
                self.sim._network(spec, False)
                self.outages.append((self._began.pop(i), t, spec.kind))
        self.events = []
        self.sim._actions.join()


def _sum_seconds(parts: list[Second], active: set[str]) -> Second:
    latest: dict[str, dict[str, Any]] = {}
    for p in parts:
        latest.update(p.latest)
    return Second(
        t=parts[0].t,
        wall=max(p.wall for p in parts),
        produced=sum(p.produced for p in parts),
        predictions=sum(p.predictions for p in parts),
        delivered=sum(p.delivered for p in parts),
        outbox_depth=sum(p.outbox_depth for p in parts),
        deadline_misses=sum(p.deadline_misses for p in parts),
        faults_active=sorted(active | {k for p in parts for k in p.faults_active}),
        latest=latest,
    )


def _sum_series(parts: list[Series]) -> Series:
    n = min(len(p.t) for p in parts)
    out = Series(t=parts[0].t[:n], wall=parts[0].wall[:n])
    out.produced = [sum(p.produced[i] for p in parts) for i in range(n)]
    out.delivered = [sum(p.delivered[i] for p in parts) for i in range(n)]
    out.outbox = [sum(p.outbox[i] for p in parts) for i in range(n)]
    return out


def _merge_results(shards: list[list[FleetResult]], n_fleets: int) -> list[FleetResult]:
    by_name: dict[str, list[FleetResult]] = {}
    for shard in shards:  # shards in worker order: each fleet's device ranges in order
        for r in shard:
            by_name.setdefault(r.name, []).append(r)
    merged = [FleetResult.merge(parts) for parts in by_name.values()]
    assert len(merged) == n_fleets
    return merged


def _error(kind: str, message: str) -> Exception:
    """A worker's exception, as the same edgernn error class when it was one."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, EdgeRNNError):
        return cls(message)
    return errors.EdgeRNNError(f"a worker process failed: {kind}: {message}")


def _broker_config(url: str | None) -> Any:
    if url is None:
        return None
    from edge_runtime.mqtt import BrokerConfig

    return BrokerConfig.load()[0]


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
