"""Faults a scenario schedules, and how each one changes what a device reads, stamps or sends.

    kind            hits      what happens while it lasts                                   parameters
    dropout         devices   the sensor returns nothing: no reading reaches the runtime   -
    nan-burst       devices   `channels` channels of every reading are NaN                   channels (all | n)
    stuck           devices   the sensor repeats the reading it gave when the fault began  -
    spike           devices   a reading's channel jumps by `size` x its training range      rate (share), size
    clock-jitter    devices   timestamps wander by N(0, sigma_ms)                           sigma_ms
    clock-gap       devices   the device clock steps forward by `step` at `at` (for good)   step (duration)
    reboot          devices   power lost at `at`: RAM state gone, off for `duration`, then  -
                              boot: state restored from the last checkpoint on disk
    broker-outage   network   the broker is stopped (spawned broker) or every connection is -
                              cut (a broker we do not own); publishers queue in the outbox
    slow-network    network   every byte to the broker is delayed by `delay_ms`             delay_ms

Device faults hit `devices`: a share of the fleet (0.1), a list of device ids, or "all".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.errors import ConfigError
from firmware_sim.timeparse import parse_duration


@dataclass(frozen=True)
class FaultKind:
    name: str
    scope: str  # "device" | "network"
    duration_s: float  # default length
    share: float  # default share of devices hit (device faults)
    params: dict[str, Any] = field(default_factory=dict)  # defaults
    summary: str = ""


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("dropout", "device", 10.0, 0.1, {}, "sensor returns nothing"),
        FaultKind("nan-burst", "device", 2.0, 0.1, {"channels": 1}, "NaN in some channels"),
        FaultKind("stuck", "device", 30.0, 0.1, {}, "sensor repeats one reading"),
        FaultKind("spike", "device", 60.0, 0.1, {"rate": 0.05, "size": 5.0}, "outliers beyond the training range"),
        FaultKind("clock-jitter", "device", 60.0, 0.2, {"sigma_ms": 20.0}, "timestamps wander"),
        FaultKind("clock-gap", "device", 0.0, 0.1, {"step": 30.0}, "device clock steps forward"),
        FaultKind("reboot", "device", 5.0, 0.1, {}, "power cut: RAM state lost, restored from checkpoint"),
        FaultKind("broker-outage", "network", 20.0, 1.0, {}, "broker down or connections cut"),
        FaultKind("slow-network", "network", 30.0, 1.0, {"delay_ms": 300.0}, "every byte delayed"),
    )
}


@dataclass
class FaultSpec:
    kind: str
    at: float  # seconds into the run
    duration: float = 0.0
    devices: float | list[str] | str = "all"  # a share of the fleet, device ids, or "all"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return FAULT_KINDS[self.kind].scope

    @property
    def end(self) -> float:
        return self.at + self.duration

    def active(self, t: float) -> bool:
        return self.at <= t < self.end

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "duration": self.duration, "devices": self.devices, **self.params}


def fault_kind(name: str) -> FaultKind:
    if name not in FAULT_KINDS:
        raise ConfigError(f"unknown fault {name!r}; allowed: {', '.join(FAULT_KINDS)}")
    return FAULT_KINDS[name]


def parse_fault(d: dict[str, Any], run_s: float, where: str = "fault") -> FaultSpec:
    """A fault from a scenario table: `kind`, `at`, optional `duration`, `devices` and the kind's parameters."""
    d = dict(d)
    if "kind" not in d:
        raise ConfigError(f"{where}: missing 'kind'; allowed: {', '.join(FAULT_KINDS)}")
    kind = fault_kind(str(d.pop("kind")))
    at = parse_duration(d.pop("at", 0.0), f"{where}.at")
    duration = parse_duration(d.pop("duration", kind.duration_s), f"{where}.duration")
    if at > run_s:
        raise ConfigError(f"{where}: {kind.name} at {at:g} s is after the end of the run ({run_s:g} s)")
    devices = d.pop("devices", "all" if kind.scope == "network" else kind.share)
    if kind.scope == "network" and devices != "all":
        raise ConfigError(f"{where}: {kind.name} hits the whole network; 'devices' must be \"all\", got {devices!r}")
    devices = _parse_devices(devices, where)
    params = dict(kind.params)
    for key, value in d.items():
        if key not in kind.params:
            allowed = ", ".join(["at", "duration", "devices", *kind.params])
            raise ConfigError(f"{where}: unknown key {key!r} for fault {kind.name!r}; allowed: {allowed}")
        params[key] = _parse_param(kind.name, key, value, where)
    return FaultSpec(kind.name, at, duration, devices, params)


def _parse_devices(value: Any, where: str) -> float | list[str] | str:
    if value == "all":
        return "all"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{where}.devices: a share of the fleet must be in (0, 1], got {value!r}")
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f'{where}.devices must be "all", a share in (0, 1] or a list of device ids, got {value!r}')


def _parse_param(kind: str, key: str, value: Any, where: str) -> Any:
    if kind == "nan-burst" and key == "channels":
        if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ConfigError(f'{where}.channels must be "all" or a count >= 1, got {value!r}')
    if key == "step":
        return parse_duration(value, f"{where}.step")
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{key} must be a number >= 0, got {value!r}")
    if key == "rate" and value > 1:
        raise ConfigError(f"{where}.rate is a share of readings in [0, 1], got {value!r}")
    return float(value)


def default_schedule(kinds: list[str], run_s: float) -> list[FaultSpec]:
    """Faults named on the command line, spread over the run without overlapping one another.

    Fault k of K starts at (0.15 + 0.7 * k / K) of the run and lasts its default length, shortened to fit
    its share of the run where the run is short.
    """
    specs = []
    slot = 0.7 * run_s / max(1, len(kinds))
    for k, name in enumerate(kinds):
        kind = fault_kind(name)
        at = (0.15 + 0.7 * k / max(1, len(kinds))) * run_s
        duration = min(kind.duration_s, 0.5 * slot)
        devices: float | str = "all" if kind.scope == "network" else kind.share
        specs.append(FaultSpec(name, at, duration, devices, dict(kind.params)))
    return specs


def pick_devices(spec: FaultSpec, device_ids: list[str], rng: np.random.Generator) -> list[str]:
    """The devices a fault hits, drawn once per run from the scenario's seed."""
    if spec.devices == "all":
        return list(device_ids)
    if isinstance(spec.devices, list):
        unknown = sorted(set(spec.devices) - set(device_ids))
        if unknown:
            raise ConfigError(f"fault {spec.kind!r} names devices that are not in the fleet: {unknown[:5]}")
        return list(spec.devices)
    n = max(1, round(float(spec.devices) * len(device_ids)))
    return sorted(rng.choice(device_ids, size=min(n, len(device_ids)), replace=False).tolist())
