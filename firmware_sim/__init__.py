"""firmware_sim: fleets of simulated devices on a laptop, each running the real edge runtime.

    from firmware_sim import Scenario, run_simulation
    scenario = Scenario.from_toml("scenarios/factory.toml")        # or Scenario.from_flags(bundle=..., ...)
    report = run_simulation(scenario, hook=print)                  # hook: a LiveSnapshot per simulated second
    report.fleet["classification"]["accuracy"], report.device("dev0003")

    from firmware_sim import imu_dataset, to_csv                   # train on what the fleet will see
    to_csv(imu_dataset(devices=8, duration_s=600, rate=25), "imu.csv")

Names are imported on first use, so `edgernn simulate --help` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Scenario": "firmware_sim.scenario",
    "FleetSpec": "firmware_sim.scenario",
    "BrokerSpec": "firmware_sim.scenario",
    "FaultSpec": "firmware_sim.faults",
    "run_simulation": "firmware_sim.engine",
    "Simulation": "firmware_sim.engine",
    "LiveSnapshot": "firmware_sim.engine",
    "Report": "firmware_sim.report",
    "PROFILES": "firmware_sim.profiles",
    "get_profile": "firmware_sim.profiles",
    "imu_dataset": "firmware_sim.signals",
    "vibration_dataset": "firmware_sim.signals",
    "temperature_dataset": "firmware_sim.signals",
    "dataset": "firmware_sim.signals",
    "to_csv": "firmware_sim.signals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
