"""The parent's side of a sharded simulation: start the worker processes, hand each its shard, start their
clocks together, run network faults against the real broker on the wall clock, aggregate their seconds for
the progress bar and the hook, and merge their results (see `firmware_sim.worker` for the other side)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgernn import errors
from edgernn.errors import EdgeRNNError
from firmware_sim.faults import FaultSpec
from firmware_sim.results import FleetResult
from firmware_sim.runner import Second, Series
from firmware_sim.scenario import VIRTUAL_EPOCH
from firmware_sim.worker import ShardJob, slices_for

if TYPE_CHECKING:
    from firmware_sim.runner import ActionThread
    from firmware_sim.scenario import Scenario


class ShardHost(Protocol):
    """What the shards read and set on the simulation that runs them (`engine.Simulation`): its settings,
    its progress and network-fault hooks, and the run's figures they fill in."""

    scenario: Scenario
    workers: int
    checkpoint_every: int
    workdir: Path
    series: Series
    ticks: int
    late_ticks: int
    max_lag_s: float
    outages: list[tuple[float, float, str]]
    _wall0: float
    _bar: Any  # the tqdm progress bar
    _actions: ActionThread

    def _flush_s(self, published_guess: int) -> float: ...
    def _second(self, s: Second) -> None: ...
    def _network(self, spec: FaultSpec, begin: bool) -> None: ...


class Shards:
    def __init__(self, sim: ShardHost) -> None:
        self.sim = sim
        self._links: _Links

    def run(
        self, hits: list[tuple[FaultSpec, list[str]]], device_url: str | None
    ) -> tuple[list[FleetResult], float, float, bool]:
        from multiprocessing.connection import Listener

        sc = self.sim.scenario
        epoch = time.time() if sc.realtime else VIRTUAL_EPOCH
        plan = slices_for(sc, self.sim.workers)
        guess = int(sc.device_count / len(plan) * sc.duration_s * max(f.rate or 10.0 for f in sc.fleets))
        jobs = [
            ShardJob(
                w,
                sc,
                slices,
                hits,
                device_url,
                sc.broker.prefix,
                self.sim.checkpoint_every,
                self.sim.workdir / f"shard{w}",
                epoch,
                self.sim._flush_s(guess),
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
                    self.sim._bar.write(f"{sc.device_count} devices over {len(jobs)} worker processes", file=sys.stderr)
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
        sc = self.sim.scenario
        self.sim._wall0 = time.monotonic() + max(0.0, start_at - time.time())
        latest: dict[int, Second] = {}
        seen: dict[float, dict[int, Second]] = {}
        net = None
        if sc.realtime and sc.broker.url is not None and any(f.scope == "network" for f in sc.faults):
            net = _NetworkClock(self.sim, start_at)
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
                    self.sim._second(_sum_seconds(list(row.values()), net.active if net else set()))
                    del seen[msg[2].t]
            elif msg[0] == "done":
                done[msg[1]] = msg
        if net is not None:
            net.finish()
        shards = [done[i] for i in sorted(done)]
        results = _merge_results([m[2] for m in shards], len(sc.fleets))
        stats = [m[4] for m in shards]
        self.sim.series = _sum_series([m[3] for m in shards])
        self.sim.ticks = sum(s["ticks"] for s in stats)
        self.sim.late_ticks = sum(s["late_ticks"] for s in stats)
        self.sim.max_lag_s = max(s["max_lag_s"] for s in stats)
        self.sim.outages = net.outages if net is not None else stats[0]["outages"]
        sim_end = min(s["sim_end"] for s in stats)
        return results, sim_end, max(s["wall_s"] for s in stats), any(s["interrupted"] for s in stats)


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

    def __init__(self, sim: ShardHost, start_at: float) -> None:
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
