"""Every discovery config the toolkit sends, validated by Home Assistant's own MQTT discovery schemas."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edge_runtime.publish.discovery import device_messages, discovery_messages
from edge_runtime.publish.ha_options import DEVICE_CLASS_UNITS, HaOptions
from tests.edge_runtime.publish.helpers import manifest

VALIDATE = Path(__file__).with_name("ha_validate.py")
# Keys HA 2024.3 does not know yet and ignores; newer HA reads them (sensor `options`: HA 2024.9, core #123248).
NEWER_HA = {"options"}


def _validate(ha_python: Path, messages) -> dict[str, dict]:
    data = json.dumps([[m.topic, m.payload.decode()] for m in messages])
    out = subprocess.run([str(ha_python), str(VALIDATE)], input=data, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _every_config():
    forecast = HaOptions(units={"temp": "°C", "hum": "%"}, device_classes={"temp": "temperature", "hum": "humidity"})
    msgs = device_messages("gw1")
    msgs += discovery_messages(manifest("classify"), "gw1", "imu.1")
    msgs += discovery_messages(manifest("anomaly", targets=["vib"]), "gw1", "pump")
    msgs += discovery_messages(manifest("forecast", targets=["temp", "hum"], horizon=2), "gw1", "cellar", ha=forecast)
    msgs += discovery_messages(manifest("anomaly"), "gw1", "pump", ha=HaOptions(state_interval=0, expire_after=0))
    return msgs


def test_every_config_passes_home_assistants_schema_and_no_key_is_ignored(ha_python):
    msgs = _every_config()
    result = _validate(ha_python, msgs)
    assert len(result) == len({m.topic for m in msgs}) >= 12
    for topic, r in result.items():
        assert r["error"] is None, (topic, r["error"])
        assert set(r["dropped"]) <= NEWER_HA, (topic, r["dropped"])  # a misspelt key would be dropped silently
    label = result["homeassistant/sensor/edgernn_imu_1/label/config"]
    assert label["dropped"] == ["options"]


def test_device_class_table_is_home_assistants(ha_python):
    out = subprocess.run(
        [str(ha_python), str(VALIDATE), "device-classes"], capture_output=True, text=True, timeout=120, check=True
    )
    theirs = json.loads(out.stdout)
    ours = {dc: None if units is None else list(units) for dc, units in DEVICE_CLASS_UNITS.items()}
    assert ours == theirs
