"""A simulation scenario: fleets of devices (bundle, profile, rate, signal), faults, broker, run length.

From a TOML file (`edgernn simulate --scenario scenarios/factory.toml`):

    name = "factory"
    duration = "1h"            # 90, "90s", "15m", "1h30m"
    seed = 7
    realtime = false           # true: wall-clock time (demos); false: as fast as the host can go
    report = "out/factory"     # JSON, PNG plots

    [broker]
    url = "spawn"              # omit: in-memory publisher; "spawn": a Mosquitto started for the run;
    prefix = "edgernn"         # "mqtt://host:1883": a broker you run (outages cut the connections)

    [[fleet]]
    bundle = "bundles/vibration"
    devices = 50
    profile = "pi-zero-2w"     # pi-zero-2w | pi-3b-plus | pi-4 | pi-5
    rate = 10                  # readings per second (default: the bundle's sample rate)
    signal = "vibration"       # imu | vibration | temperature | "replay:my.csv" (your recordings, or a
                               # directory of CSVs); default: matched by feature names, else the
                               # held-out readings in the bundle (replay:bundle)
    signal_params = { fault_fraction = 0.3 }

    [[fault]]
    kind = "broker-outage"
    at = "20m"
    duration = "2m"

or from the command line (`Scenario.from_flags`). Every bad value is a ConfigError that names it and says
what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgernn.config import read_toml
from edgernn.errors import BundleError, ConfigError
from firmware_sim.faults import FaultSpec, default_schedule, fault_kind, parse_fault
from firmware_sim.profiles import DEFAULT_HOST_SCORE, DeviceProfile, get_profile
from firmware_sim.signals import SIGNALS, signal_class
from firmware_sim.signals.replay import BUNDLE_SOURCE, PREFIX, is_replay, replay_path
from firmware_sim.timeparse import parse_duration

VIRTUAL_EPOCH = 1_704_067_200.0  # 2024-01-01T00:00:00Z: virtual runs stamp readings from here, reproducibly
BACKENDS = ("auto", "numpy", "onnx", "tflite")
PRECISIONS = ("fp32", "int8")
_TOP = ("name", "duration", "seed", "realtime", "speed", "report", "host_score", "progress", "broker", "fleet", "fault")
_FLEET = ("name", "bundle", "devices", "profile", "factor", "rate", "signal", "signal_params", "backend", "precision")
_BROKER = ("url", "prefix")


@dataclass
class FleetSpec:
    bundle: Path
    devices: int
    profile: DeviceProfile
    name: str = ""  # "" -> fleet<k>, k its position in the scenario
    rate: float | None = None  # None: the bundle's sample rate (10/s when it has none)
    signal: str | None = None  # None: matched to the bundle's feature names
    signal_params: dict[str, Any] = field(default_factory=dict)
    backend: str = "auto"
    precision: str = "fp32"


@dataclass
class BrokerSpec:
    url: str | None = None  # None: in-memory; "spawn"; or "mqtt://host:port"
    prefix: str = "edgernn"


@dataclass
class Scenario:
    fleets: list[FleetSpec]
    duration_s: float
    faults: list[FaultSpec] = field(default_factory=list)
    broker: BrokerSpec = field(default_factory=BrokerSpec)
    name: str = "simulation"
    seed: int = 0
    realtime: bool = False
    speed: float = 1.0  # realtime only: simulated seconds per wall-clock second
    report_dir: Path | None = None
    host_score: float = DEFAULT_HOST_SCORE
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.fleets:
            raise ConfigError("a scenario needs at least one fleet")
        if not self.duration_s > 0:
            raise ConfigError(f"duration must be > 0, got {self.duration_s!r} s")
        if not self.speed > 0:
            raise ConfigError(f"speed must be > 0, got {self.speed!r}")
        if not self.host_score > 0:
            raise ConfigError(f"host_score must be > 0 (a Geekbench 6 single-core score), got {self.host_score!r}")
        for k, f in enumerate(self.fleets):
            f.name = f.name or f"fleet{k}"
        names = [f.name for f in self.fleets]
        if len(set(names)) != len(names):
            raise ConfigError(f"fleet names must be unique, got {names}")
        if self.broker.url is None and any(f.kind == "slow-network" for f in self.faults):
            raise ConfigError("fault 'slow-network' needs a broker (broker url \"spawn\" or mqtt://host:port)")

    @property
    def device_count(self) -> int:
        return sum(f.devices for f in self.fleets)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Scenario:
        path = Path(path)
        data = read_toml(path, "scenario file")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, base=path.parent)

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> Scenario:
        _known(d, _TOP, "scenario")
        if "duration" not in d:
            raise ConfigError("scenario: missing 'duration' (e.g. \"15m\")")
        duration = parse_duration(d["duration"], "duration")
        fleets_raw = d.get("fleet")
        if not isinstance(fleets_raw, list) or not fleets_raw:
            raise ConfigError("scenario: needs at least one [[fleet]] table with a bundle and a device count")
        fleets = [_fleet(f, k, base) for k, f in enumerate(fleets_raw)]
        faults_raw = d.get("fault", [])
        if not isinstance(faults_raw, list):
            raise ConfigError("scenario: faults are [[fault]] tables")
        faults = [parse_fault(f, duration, f"fault[{k}]") for k, f in enumerate(faults_raw)]
        broker = d.get("broker", {})
        if not isinstance(broker, dict):
            raise ConfigError("scenario: [broker] must be a table with url and prefix")
        _known(broker, _BROKER, "broker")
        report = d.get("report")
        return cls(
            fleets=fleets,
            duration_s=duration,
            faults=faults,
            broker=BrokerSpec(url=broker_url(broker.get("url")), prefix=str(broker.get("prefix", "edgernn"))),
            name=str(d.get("name", "simulation")),
            seed=_int(d.get("seed", 0), "seed"),
            realtime=_bool(d.get("realtime", False), "realtime"),
            speed=_number(d.get("speed", 1.0), "speed"),
            report_dir=None if report is None else Path(str(report)).expanduser(),
            host_score=_number(d.get("host_score", DEFAULT_HOST_SCORE), "host_score"),
            progress=_bool(d.get("progress", True), "progress"),
        )

    @classmethod
    def from_flags(
        cls,
        *,
        bundle: str | Path,
        devices: int,
        duration: str | float,
        profile: str = "pi-4",
        faults: str | list[str] | None = None,
        broker: str | None = None,
        report: str | Path | None = None,
        realtime: bool = False,
        seed: int = 0,
        rate: float | None = None,
        signal: str | None = None,
        backend: str = "auto",
        precision: str = "fp32",
        host_score: float = DEFAULT_HOST_SCORE,
        factor: float | None = None,
        signal_params: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> Scenario:
        """The scenario `edgernn simulate --bundle B --devices N ...` describes: one fleet, faults spread out."""
        duration_s = parse_duration(duration, "--duration")
        kinds = _fault_list(faults)
        fleet = _fleet(
            {
                "bundle": str(bundle),
                "devices": devices,
                "profile": profile,
                "rate": rate,
                "signal": signal,
                "backend": backend,
                "precision": precision,
                "factor": factor,
                "signal_params": dict(signal_params or {}),
            },
            0,
            None,
        )
        return cls(
            fleets=[fleet],
            duration_s=duration_s,
            faults=default_schedule(kinds, duration_s),
            broker=BrokerSpec(url=broker_url(broker)),
            seed=seed,
            realtime=realtime,
            report_dir=None if report is None else Path(report),
            host_score=host_score,
            progress=progress,
        )


def _fault_list(faults: str | list[str] | None) -> list[str]:
    if not faults:
        return []
    kinds = [k.strip() for k in faults.split(",")] if isinstance(faults, str) else list(faults)
    for k in kinds:
        fault_kind(k)
    return [k for k in kinds if k]


def _fleet(d: dict[str, Any], k: int, base: Path | None) -> FleetSpec:
    where = f"fleet[{k}]"
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a table")
    d = {key: value for key, value in d.items() if value is not None}
    _known(d, _FLEET, where)
    if "bundle" not in d:
        raise ConfigError(f"{where}: missing 'bundle' (a bundle directory written by edgernn export)")
    devices = d.get("devices", 1)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ConfigError(f"{where}: devices must be a whole number >= 1, got {devices!r}")
    profile = get_profile(str(d.get("profile", "pi-4")))
    if "factor" in d:
        profile = profile.with_factor(_number(d["factor"], f"{where}.factor"))
    rate = d.get("rate")
    if rate is not None:
        rate = _number(rate, f"{where}.rate")
        if not rate > 0:
            raise ConfigError(f"{where}: rate must be > 0 readings per second, got {rate!r}")
    signal = d.get("signal")
    if is_replay(signal):
        path = replay_path(str(signal), base)
        signal = PREFIX + (BUNDLE_SOURCE if path is None else str(path))
    elif signal is not None:
        signal_class(str(signal))
    params = d.get("signal_params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.signal_params must be a table, got {params!r}")
    backend = str(d.get("backend", "auto"))
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    precision = str(d.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    return FleetSpec(
        bundle=_path(d["bundle"], base),
        devices=devices,
        profile=profile,
        name=str(d.get("name", f"fleet{k}")),
        rate=rate,
        signal=None if signal is None else str(signal),
        signal_params=dict(params),
        backend=backend,
        precision=precision,
    )


def check_bundle(fleet: FleetSpec) -> Any:
    """The fleet's bundle manifest, or a ConfigError naming the bundle and why it does not load."""
    from edge_runtime.bundle.manifest import Manifest

    try:
        return Manifest.load(fleet.bundle)
    except BundleError as exc:
        raise ConfigError(f"fleet {fleet.name!r}: bundle {str(fleet.bundle)!r} does not load: {exc}") from exc


def match_signal(fleet: FleetSpec, features: list[str], replayable: bool = False) -> str:
    """The signal that provides every feature the bundle reads, by name: a built-in one, else (`replayable`:
    the bundle carries held-out readings) `replay:bundle`; ConfigError otherwise."""
    if is_replay(fleet.signal):
        return str(fleet.signal)
    if fleet.signal is not None:
        missing = [f for f in features if f not in signal_class(fleet.signal).channels]
        if missing:
            have = ", ".join(signal_class(fleet.signal).channels)
            raise ConfigError(
                f"fleet {fleet.name!r}: signal {fleet.signal!r} has no channel for the bundle's features {missing}; "
                f"it provides: {have}"
            )
        return fleet.signal
    for name, cls in SIGNALS.items():
        if all(f in cls.channels for f in features):
            return name
    if replayable:
        return PREFIX + BUNDLE_SOURCE
    offered = "; ".join(f"{n}: {', '.join(c.channels)}" for n, c in SIGNALS.items())
    raise ConfigError(
        f"fleet {fleet.name!r}: no simulated signal provides the bundle's features {features} (signals offer "
        f"{offered}), and the bundle carries no held-out readings to replay (exported before bundles carried "
        "heldout.npz); give your recordings with --signal replay:YOUR.csv, or re-export the bundle"
    )


def _known(d: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {', '.join(allowed)}")


def broker_url(url: Any) -> str | None:
    if url is None or url in ("", "memory", "none"):
        return None
    url = str(url)
    if url != "spawn" and not url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f'broker url {url!r}; allowed: "spawn", mqtt://host:port, mqtts://host:port, or none')
    return url


def _path(value: Any, base: Path | None) -> Path:
    p = Path(str(value)).expanduser()
    if base is not None and not p.is_absolute() and not p.exists() and (base / p).exists():
        return base / p  # relative to the scenario file when it is not relative to the working directory
    return p


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, got {value!r}")
    return value
