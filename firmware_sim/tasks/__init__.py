"""The simulator's tasks by name: a new task is a new module here and a line below (see `firmware_sim.tasks.base`)."""

from __future__ import annotations

from edgernn.errors import ConfigError
from firmware_sim.tasks.anomaly import AnomalySim
from firmware_sim.tasks.base import SimTask
from firmware_sim.tasks.classify import ClassifySim
from firmware_sim.tasks.forecast import ForecastSim
from firmware_sim.tasks.generate import GenerateSim

SIM_TASKS: dict[str, SimTask] = {t.name: t() for t in (ClassifySim, ForecastSim, AnomalySim, GenerateSim)}


def sim_task_for(name: str) -> SimTask:
    """The simulator's side of the task called `name`; ConfigError naming the supported ones otherwise."""
    if name not in SIM_TASKS:
        raise ConfigError(f"unsupported task {name!r}; supported: {', '.join(SIM_TASKS)}")
    return SIM_TASKS[name]


__all__ = ["SIM_TASKS", "SimTask", "sim_task_for"]
