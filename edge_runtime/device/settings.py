"""`edgernn run` settings: defaults, then a device config file (TOML), then command-line flags.

A device config carries every flag, with underscores (`state_dir`, `time_column`, ...), plus MQTT broker
settings at the top level or in an `[mqtt]` table (`username`, `ca_file`, ...; the password comes from
$EDGERNN_MQTT_PASSWORD or `password_file`), and validation policies in a `[policies]` table:

    bundle = "/opt/edgernn/imu"
    device = "kitchen-imu"
    source = "serial:/dev/ttyUSB0"
    mqtt = "mqtt://homeassistant.local:1883"
    state_dir = "/var/lib/edgernn-kitchen-imu"
    [policies]
    missing = "hold"
    max_gap = 5.0

With `discovery = true`, Home Assistant's presentation: `units = {temp = "°C"}`, `device_classes =
{temp = "temperature"}`, `ha_state_interval = 1.0`, `ha_expire_after = 120` (docs/integrations.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_runtime.stream.guard import Policies
from edgernn.config import read_toml
from edgernn.errors import ConfigError


def broker_keys() -> tuple[str, ...]:
    """Device-config keys that configure the MQTT connection: `BrokerConfig`'s fields, with `password_file`
    instead of `password` (a password never sits in a config file). Derived, so a new field is never missed."""
    from edge_runtime.publish.config import BrokerConfig  # stdlib only; imported when a config file is read

    return (*(f.name for f in fields(BrokerConfig) if f.name != "password"), "password_file")


@dataclass
class RunSettings:
    bundle: str | None = None
    source: str = "stdin"
    backend: str = "auto"
    precision: str = "fp32"
    artifact: str | None = None
    device: str = "dev1"
    stream: str | None = None  # stream id for sources that name none (default: the device id)
    state_dir: str | None = None
    mqtt: str | None = None
    prefix: str = "edgernn"
    discovery: bool = False
    time_column: str | None = None
    stream_column: str | None = None
    rate: str = "max"  # csv: max | recorded
    speed: float = 1.0  # csv at the recorded rate: x real time
    baud: int = 115200
    checkpoint_every: int = 1000
    max_state_age: float | None = None
    max_streams: int = 10_000  # streams kept in memory; beyond it the longest idle one is evicted
    verify: bool = True
    limit: int | None = None  # stop after this many readings
    drain_timeout: float = 10.0  # seconds to wait for the outbox to empty when the source ends; 0: none
    quiet: bool = False  # no JSON lines on stdout (the summary still goes to stderr)
    # Home Assistant (with discovery): edge_runtime.publish.ha_options.HaOptions
    units: dict[str, str] = field(default_factory=dict)  # forecast target -> unit, e.g. {temp = "°C"}
    device_classes: dict[str, str] = field(default_factory=dict)  # target -> HA device class ("temperature")
    ha_state_interval: float | None = None  # seconds between the states HA reads; 0: every prediction
    ha_expire_after: float | None = None  # seconds without a state before HA shows unavailable; 0: never
    policies: dict[str, Any] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)

    def policy_object(self) -> Policies:
        return Policies.from_dict(self.policies)

    def ha_options(self) -> Any:
        """The `HaOptions` of these settings (units, device classes, state rate, expiry), checked."""
        from edge_runtime.publish.ha_options import HaOptions  # stdlib only

        return HaOptions.from_settings(vars(self))


_RUN_KEYS = {f.name for f in fields(RunSettings)} - {"policies", "broker"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a device config file -> settings dict (unknown keys refused, naming the allowed ones)."""
    p = Path(path).expanduser()
    data = read_toml(p, "device config")
    out: dict[str, Any] = {"policies": {}, "broker": {}}
    keys = broker_keys()
    for key, value in data.items():
        if key == "policies":
            if not isinstance(value, dict):
                raise ConfigError(f"{p}: [policies] must be a table")
            out["policies"] = dict(value)
        elif key == "mqtt" and isinstance(value, dict):
            url = value.pop("url", None)
            if url is not None:
                out["mqtt"] = url
            _broker(out["broker"], value, p)
        elif key in keys:
            out["broker"][key] = value
        elif key in _RUN_KEYS:
            out[key] = value
        else:
            allowed = sorted(_RUN_KEYS | set(keys) | {"policies"})
            raise ConfigError(f"{p}: unknown setting {key!r}; allowed: {', '.join(allowed)}")
    if "password" in out["broker"]:
        raise ConfigError(f"{p}: keep the MQTT password out of the config; use $EDGERNN_MQTT_PASSWORD or password_file")
    return out


def _broker(into: dict[str, Any], table: dict[str, Any], path: Path) -> None:
    for key, value in table.items():
        if key not in broker_keys():
            raise ConfigError(f"{path}: unknown [mqtt] setting {key!r}; allowed: url, {', '.join(broker_keys())}")
        into[key] = value


def resolve(flags: dict[str, Any], config_path: str | None) -> RunSettings:
    """Defaults < config file < flags given on the command line (flags left at None do not override)."""
    merged: dict[str, Any] = {"policies": {}, "broker": {}}
    if config_path:
        merged = load_config(config_path)
    for key, value in flags.items():
        if value is None:
            continue
        if key == "policies":
            merged["policies"] = {**merged["policies"], **value}
        elif key in _RUN_KEYS:
            merged[key] = value
    settings = RunSettings(**merged)
    if not settings.bundle:
        raise ConfigError("no bundle: give BUNDLE on the command line or `bundle = ...` in the --config file")
    settings.policy_object()  # refuse bad policies before anything starts
    settings.ha_options()  # and bad units, device classes, rates
    if settings.stream is not None:  # it names every reading that names none: every one would be bad_stream
        from edge_runtime.publish.base import check_name  # stdlib only

        check_name("stream", settings.stream)
    if not 0 <= settings.drain_timeout < float("inf"):
        raise ConfigError(f"drain timeout {settings.drain_timeout!r}; allowed: seconds >= 0 (0: do not wait)")
    return settings


def broker_config(settings: RunSettings) -> Any:
    """The publisher's BrokerConfig: the device config's broker settings, the EDGERNN_MQTT_* environment on top."""
    from edge_runtime.publish.config import ENV, BrokerConfig

    values = dict(settings.broker)
    for name, var in ENV.items():
        if os.environ.get(var):
            values[name] = os.environ[var]
    return BrokerConfig.from_mapping(values)


def parse_policy_flags(items: list[str] | None) -> dict[str, Any] | None:
    """`--policy missing=impute --policy max_gap=5` -> {"missing": "impute", "max_gap": 5.0}."""
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--policy {item!r}: expected REASON=POLICY, e.g. missing=impute")
        key = key.strip()
        if key in ("range_margin", "max_gap", "max_future"):
            try:
                out[key] = float(value)
            except ValueError as exc:
                raise ConfigError(f"--policy {key}={value!r}: a number of seconds or range widths expected") from exc
        else:
            out[key] = value.strip()
    return out
