"""What Home Assistant is told besides the model's outputs: units, device classes, state rate, expiry.

Set in the device config (TOML) or passed to `open_publisher(..., ha=HaOptions(...))`:

    discovery = true
    units = {temp = "°C", hum = "%"}                          # per forecast target
    device_classes = {temp = "temperature", hum = "humidity"}  # Home Assistant sensor device classes
    ha_state_interval = 1.0    # seconds between the states HA sees (also on a label change); 0: every prediction
    ha_expire_after = 120      # seconds without a state before HA shows "unavailable"; 0: never; default derived

Checked against the bundle's targets when the publisher opens, so a typo fails at start with a one-line
message instead of leaving HA with a sensor that has no unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgernn.errors import ConfigError

# Home Assistant's numeric sensor device classes (SensorDeviceClass, 2024.3) and, where HA checks the unit
# against the class (DEVICE_CLASS_UNITS), the units it accepts; a mismatch makes HA log a warning per entity.
# tests/integrations/test_ha_schemas.py compares this table with the installed Home Assistant's own.
DEVICE_CLASS_UNITS: dict[str, tuple[str | None, ...] | None] = {
    "apparent_power": ("VA",),
    "aqi": (None,),
    "atmospheric_pressure": ("Pa", "bar", "cbar", "hPa", "inHg", "kPa", "mbar", "mmHg", "psi"),
    "battery": ("%",),
    "carbon_dioxide": ("ppm",),
    "carbon_monoxide": ("ppm",),
    "current": ("A", "mA"),
    "data_rate": ("B/s", "GB/s", "Gbit/s", "GiB/s", "KiB/s", "MB/s", "Mbit/s", "MiB/s", "bit/s", "kB/s", "kbit/s"),
    "data_size": (
        "B",
        "EB",
        "EiB",
        "GB",
        "Gbit",
        "GiB",
        "KiB",
        "MB",
        "Mbit",
        "MiB",
        "PB",
        "PiB",
        "TB",
        "TiB",
        "YB",
        "YiB",
        "ZB",
        "ZiB",
        "bit",
        "kB",
        "kbit",
    ),
    "distance": ("cm", "ft", "in", "km", "m", "mi", "mm", "yd"),
    "duration": ("d", "h", "min", "ms", "s"),
    "energy": ("GJ", "MJ", "MWh", "Wh", "kWh"),
    "energy_storage": ("GJ", "MJ", "MWh", "Wh", "kWh"),
    "frequency": ("GHz", "Hz", "MHz", "kHz"),
    "gas": ("CCF", "ft³", "m³"),
    "humidity": ("%",),
    "illuminance": ("lx",),
    "irradiance": ("BTU/(h⋅ft²)", "W/m²"),
    "moisture": ("%",),
    "monetary": None,
    "nitrogen_dioxide": ("µg/m³",),
    "nitrogen_monoxide": ("µg/m³",),
    "nitrous_oxide": ("µg/m³",),
    "ozone": ("µg/m³",),
    "ph": (None,),
    "pm1": ("µg/m³",),
    "pm10": ("µg/m³",),
    "pm25": ("µg/m³",),
    "power": ("W", "kW"),
    "power_factor": ("%", None),
    "precipitation": ("cm", "in", "mm"),
    "precipitation_intensity": ("in/d", "in/h", "mm/d", "mm/h"),
    "pressure": ("Pa", "bar", "cbar", "hPa", "inHg", "kPa", "mbar", "mmHg", "psi"),
    "reactive_power": ("var",),
    "signal_strength": ("dB", "dBm"),
    "sound_pressure": ("dB", "dBA"),
    "speed": ("ft/s", "in/d", "in/h", "km/h", "kn", "m/s", "mm/d", "mm/h", "mph"),
    "sulphur_dioxide": ("µg/m³",),
    "temperature": ("K", "°C", "°F"),
    "volatile_organic_compounds": ("µg/m³",),
    "volatile_organic_compounds_parts": ("ppb", "ppm"),
    "voltage": ("V", "mV"),
    "volume": ("CCF", "L", "fl. oz.", "ft³", "gal", "mL", "m³"),
    "volume_flow_rate": ("L/min", "ft³/min", "gal/min", "m³/h"),
    "volume_storage": ("CCF", "L", "fl. oz.", "ft³", "gal", "mL", "m³"),
    "water": ("CCF", "L", "ft³", "gal", "m³"),
    "weight": ("g", "kg", "lb", "mg", "oz", "st", "µg"),
    "wind_speed": ("ft/s", "km/h", "kn", "m/s", "mph"),
}


@dataclass(frozen=True)
class HaOptions:
    units: Mapping[str, str] = field(default_factory=dict)  # target -> unit of measurement
    device_classes: Mapping[str, str] = field(default_factory=dict)  # target -> HA sensor device class
    state_interval: float = 1.0  # seconds between the states HA reads; 0: HA reads every prediction
    expire_after: float | None = None  # seconds; None: derived (expire_after_for); 0: never expires

    def __post_init__(self) -> None:
        for name in ("units", "device_classes"):
            table = getattr(self, name)
            if not isinstance(table, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in table.items()
            ):
                raise ConfigError(f'{name} must map target names to strings, e.g. {name} = {{temp = "..."}}')
        if not (isinstance(self.state_interval, int | float) and 0 <= self.state_interval <= 3600):
            raise ConfigError(f"ha_state_interval={self.state_interval!r}; allowed: 0 (every prediction) to 3600 s")
        if self.expire_after is not None and not (
            isinstance(self.expire_after, int | float) and 0 <= self.expire_after <= 86400
        ):
            raise ConfigError(f"ha_expire_after={self.expire_after!r}; allowed: 0 (never) to 86400 s")
        for target, dc in self.device_classes.items():
            if dc not in DEVICE_CLASS_UNITS:
                raise ConfigError(
                    f"device_classes: {dc!r} for {target!r} is not a numeric Home Assistant sensor device class; "
                    f"allowed: {', '.join(sorted(DEVICE_CLASS_UNITS))}"
                )
            allowed = DEVICE_CLASS_UNITS[dc]
            unit = self.units.get(target)
            if allowed is not None and unit not in allowed:
                raise ConfigError(
                    f"units: {unit!r} for {target!r} does not fit device class {dc!r}; Home Assistant accepts: "
                    + ", ".join(repr(u) for u in allowed if u is not None)
                )

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> HaOptions:
        """From a device config's keys: units, device_classes, ha_state_interval, ha_expire_after."""
        kw: dict[str, Any] = {}
        for key, name in (("units", "units"), ("device_classes", "device_classes")):
            if values.get(key) is not None:
                kw[name] = dict(values[key]) if isinstance(values[key], Mapping) else values[key]
        for key, name in (("ha_state_interval", "state_interval"), ("ha_expire_after", "expire_after")):
            if values.get(key) is not None:
                try:
                    kw[name] = float(values[key])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{key}={values[key]!r} is not a number of seconds") from exc
        return cls(**kw)

    def check_targets(self, targets: list[str]) -> None:
        """Every unit and device class names one of the bundle's targets."""
        for name in ("units", "device_classes"):
            unknown = sorted(set(getattr(self, name)) - set(targets))
            if unknown:
                raise ConfigError(
                    f"{name}: {', '.join(map(repr, unknown))} is not a target of this bundle; "
                    f"targets: {', '.join(targets) or 'none (the model has no forecast targets)'}"
                )

    def expire_after_for(self, sample_rate: float | None) -> int | None:
        """Whole seconds for HA's `expire_after`: as set, else 10 readings or 10 states, at least 60 s; None: off.

        Derived from the bundle's sample rate so that a sensor read every 5 minutes is not shown unavailable
        between its readings; HA takes whole seconds.
        """
        if self.expire_after is not None:
            return math.ceil(self.expire_after) or None
        period = 1.0 / sample_rate if sample_rate else 0.0
        return max(60, math.ceil(10 * max(period, self.state_interval)))
