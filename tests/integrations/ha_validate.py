"""Run by Home Assistant's own Python (tests/integrations): validate discovery configs with HA's schemas.

stdin: a JSON list of [topic, payload]. stdout: a JSON object topic -> {"error": str | null, "dropped": [keys
HA's schema removed, i.e. keys HA does not know and would silently ignore]}.
`ha_validate.py yaml`: stdin a configuration.yaml `mqtt:` block; stdout a list of errors (null: valid).
`ha_validate.py device-classes`: HA's numeric sensor device classes and the units it accepts for each.
"""

from __future__ import annotations

import importlib
import json
import sys


def device_class_units() -> dict[str, list[str | None] | None]:
    """HA's numeric sensor device classes and the units it accepts for each (None: any unit)."""
    from homeassistant.components.sensor import DEVICE_CLASS_UNITS, NON_NUMERIC_DEVICE_CLASSES, SensorDeviceClass

    out: dict[str, list[str | None] | None] = {}
    for dc in SensorDeviceClass:
        if dc not in NON_NUMERIC_DEVICE_CLASSES:
            units = DEVICE_CLASS_UNITS.get(dc)
            out[dc.value] = None if units is None else sorted(units, key=lambda u: (u is None, str(u)))
    return out


def validate_yaml(text: str) -> list[str | None]:
    import yaml

    out: list[str | None] = []
    for component, items in yaml.safe_load(text)["mqtt"].items():
        schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").PLATFORM_SCHEMA_MODERN
        for item in items:
            try:
                schema(item)
                out.append(None)
            except Exception as exc:  # voluptuous.Invalid: unknown keys are errors here, not dropped
                out.append(f"{type(exc).__name__}: {exc}")
    return out


def main() -> None:
    from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS

    if sys.argv[1:] == ["device-classes"]:
        json.dump(device_class_units(), sys.stdout)
        return
    if sys.argv[1:] == ["yaml"]:  # a configuration.yaml `mqtt:` block: each item through the platform schema
        json.dump(validate_yaml(sys.stdin.read()), sys.stdout)
        return

    out = {}
    for topic, payload in json.load(sys.stdin):
        component = topic.split("/")[1]
        config = json.loads(payload)
        abbreviated = [k for k in config if ABBREVIATIONS.get(k, k) != k]  # we send full names only
        config["platform"] = "mqtt"  # as HA's discovery adds it
        schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
        try:
            valid = schema(dict(config))
            error = None
            dropped = sorted(set(config) - set(valid) - {"platform"})
        except Exception as exc:  # voluptuous.Invalid and friends: report, do not stop
            error, dropped = f"{type(exc).__name__}: {exc}", []
        out[topic] = {"error": error, "dropped": dropped + abbreviated}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
