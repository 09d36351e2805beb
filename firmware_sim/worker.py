"""A shard of a simulation in its own process: some devices of each fleet, on their own clock.

One process runs the whole fleet on one core (the interpreter lock); shards put more cores to work, each
process stepping its devices with `step_many` and running their publishers. On this project's 2-core
machine two shards help since the counting subscriber reads `mosquitto_sub` (measured: 100 in-memory devices
at 10/s, x38-x55 real time in one process, x63 in two; 1,000 MQTT devices, outboxes draining 4k vs 6k
predictions a second of the 10k made); on a many-core host shards scale further. Every shard draws the
same signals and faults for its devices as one process would.

A worker is `python -m firmware_sim.worker HOST:PORT` (the authentication key in $EDGERNN_SIM_AUTHKEY): a
plain subprocess, so a user's script is never re-imported the way multiprocessing's spawn re-imports
`__main__`. It connects back to the parent (`multiprocessing.connection`, pickled messages):
    parent -> ShardJob
    worker -> ("ready", i)                  runtime loaded, publishers connected
    parent -> ("go", start_at)              every shard starts its clock at the same wall-clock instant
    worker -> ("second", i, Second)         once per simulated second
    worker -> ("done", i, results, series, stats) | ("error", i, type name, message)
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware_sim.events import PROGRESS_EVERY_S, Counting, summary_line
from firmware_sim.faults import FaultSpec
from firmware_sim.fleet import FleetRun
from firmware_sim.runner import Runner, Second, publishers_here
from firmware_sim.scenario import Scenario

Slice = tuple[int, int, int, int]  # (fleet index, first device index in the run, offset in the fleet, devices)


@dataclass
class ShardJob:
    index: int
    scenario: Scenario
    slices: list[Slice]
    hits: list[tuple[FaultSpec, list[str]]]
    device_url: str | None
    prefix: str
    checkpoint_every: int
    workdir: Path
    epoch: float
    flush_s: float


def slices_for(scenario: Scenario, workers: int) -> list[list[Slice]]:
    """Every fleet cut into `workers` consecutive device ranges, as even as can be; one list per worker."""
    out: list[list[Slice]] = [[] for _ in range(workers)]
    first = 0
    for k, fleet in enumerate(scenario.fleets):
        bounds = np.linspace(0, fleet.devices, workers + 1).round().astype(int)
        for w in range(workers):
            a, b = int(bounds[w]), int(bounds[w + 1])
            if b > a:
                out[w].append((k, first + a, a, b - a))
        first += fleet.devices
    return [s for s in out if s]


def build_fleets(
    scenario: Scenario, slices: list[Slice], hits: list[tuple[FaultSpec, list[str]]], *, epoch: float,
    workdir: Path, checkpoint_every: int,
) -> list[FleetRun]:  # fmt: skip
    """The FleetRuns for some device ranges, with the device faults that hit them (drawn once for the run)."""
    from dataclasses import replace

    fleets = []
    for k, first, offset, n in slices:
        spec = scenario.fleets[k]
        part = spec if n == spec.devices else replace(spec, devices=n)
        fleet = FleetRun(
            part,
            first_index=first,
            duration_s=scenario.duration_s,
            seed=scenario.seed,
            epoch=epoch,
            workdir=workdir / spec.name,
            host_score=scenario.host_score,
            checkpoint_every=checkpoint_every,
            index=k,
            offset=offset,
        )
        fleet.set_faults(hits, scenario.seed)
        fleets.append(fleet)
    return fleets


def memory_network(fleets: list[FleetRun]) -> Any:
    """Network faults of the in-memory broker: an outage takes every publisher offline."""

    def action(spec: FaultSpec, begin: bool) -> None:
        if spec.kind == "broker-outage":
            for fleet in fleets:
                fleet.set_online(not begin)

    return action


def worker_main(job: ShardJob, conn: Any) -> None:
    """Run one shard, talking to the parent over `conn`."""
    try:
        fleets = build_fleets(
            job.scenario,
            job.slices,
            job.hits,
            epoch=job.epoch,
            workdir=job.workdir,
            checkpoint_every=job.checkpoint_every,
        )
        config = broker_config(job.device_url)
        memory = job.device_url is None
        with publishers_here(job.device_url) as pump:
            for fleet in fleets:
                fleet.open_runtime(
                    np.random.default_rng([job.scenario.seed, 11, fleet.index, fleet.first_index_of_fleet])
                )
                fleet.open_publishers(job.device_url, job.prefix, config)
            conn.send(("ready", job.index))
            go, start_at = conn.recv()
            assert go == "go"
            with Counting() as events:  # this shard's connection events: one line per interval, not per device
                next_line = [time.monotonic() + PROGRESS_EVERY_S]

                def second(s: Any) -> None:
                    conn.send(("second", job.index, s))
                    if job.scenario.progress and time.monotonic() >= next_line[0]:
                        next_line[0] = time.monotonic() + PROGRESS_EVERY_S
                        line = summary_line(events.take(), f"the last {PROGRESS_EVERY_S:.0f} s")
                        if line:
                            print(f"worker {job.index}: {line}", file=sys.stderr, flush=True)

                runner = Runner(
                    fleets,
                    job.scenario,
                    network=memory_network(fleets) if memory else None,
                    on_second=second,
                    pump=pump,
                )
                runner.run(start_at=start_at)
                runner.finish(time.monotonic() + job.flush_s)
        stats = {
            "ticks": runner.ticks,
            "late_ticks": runner.late_ticks,
            "max_lag_s": runner.max_lag_s,
            "sim_end": runner.sim_end,
            "wall_s": runner.wall_s,
            "interrupted": runner.interrupted,
            "outages": runner.outages,
        }
        conn.send(("done", job.index, [f.result() for f in fleets], runner.series, stats))
    except BaseException as exc:  # the parent re-raises it with its message
        conn.send(("error", job.index, type(exc).__name__, str(exc)))


def main(argv: list[str] | None = None) -> int:
    from multiprocessing.connection import Client

    args = sys.argv[1:] if argv is None else argv
    host, _, port = args[0].rpartition(":")
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["EDGERNN_SIM_AUTHKEY"]))
    job: ShardJob = conn.recv()
    worker_main(job, conn)
    conn.close()
    return 0


def broker_config(url: str | None) -> Any:
    """The devices' BrokerConfig (None in memory); the engine and every worker load it the same way."""
    if url is None:
        return None
    from edge_runtime.publish import BrokerConfig

    return BrokerConfig.load()[0]


__all__ = ["Second", "ShardJob", "broker_config", "build_fleets", "slices_for", "worker_main"]

if __name__ == "__main__":
    sys.exit(main())
