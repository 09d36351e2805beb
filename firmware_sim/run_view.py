"""What the report reads of a finished run: the run's figures, not the engine that made them.

`engine.Simulation` is one; the report is typed against this so it never imports the engine (which imports
the report), and a test or a user's own loop can hand it any object with these fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from firmware_sim.runner import Series
    from firmware_sim.scenario import Scenario


class RunView(Protocol):
    scenario: Scenario
    workers: int
    ticks: int
    late_ticks: int
    max_lag_s: float
    series: Series  # per simulated second: produced, outbox, wall
    outages: list[tuple[float, float, str]]  # (start, end, kind) in simulated seconds
    cpu_s: dict[str, float]  # simulator / child_processes
    fault_devices: dict[int, list[str]]  # id(FaultSpec) -> the devices it hit
