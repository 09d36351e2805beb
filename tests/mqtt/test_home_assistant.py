"""Home Assistant discovery on a real broker: retained configs, re-sent on HA's birth message, removable."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from edge_runtime.publish import open_publisher
from tests.mqtt.helpers import FAST, manifest, pred, wait_until

pytestmark = pytest.mark.broker


def _retained(broker, topic: str) -> dict[str, dict]:
    """What a newcomer (Home Assistant starting now) gets: the retained messages under `topic`."""
    out = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", topic, "-v", "-W", "1", "--retained-only"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    msgs = {}
    for line in out.stdout.splitlines():
        t, _, payload = line.partition(" ")
        msgs[t] = json.loads(payload) if payload else {}
    return msgs


def test_discovery_is_retained_resent_on_ha_birth_and_removable(mosquitto, mosquitto_sub, tmp_path):
    pub = open_publisher(
        mosquitto.url, "cellar", config=FAST, discovery=True, manifest=manifest("anomaly", targets=["temp"]),
        state_dir=tmp_path / "state",
    )  # fmt: skip
    pub.publish(pred("cellar"))
    assert pub.flush(10)
    configs = _retained(mosquitto, "homeassistant/#")
    assert set(configs) == {
        "homeassistant/sensor/edgernn_cellar/anomaly_score/config",
        "homeassistant/binary_sensor/edgernn_cellar/anomaly/config",
        "homeassistant/sensor/edgernn_cellar/latency/config",
        "homeassistant/sensor/edgernn_cellar/outbox_depth/config",  # the device itself
    }
    score = configs["homeassistant/sensor/edgernn_cellar/anomaly_score/config"]
    assert score["state_topic"] == "edgernn/cellar/state" and score["device"]["name"] == "cellar"
    status = _retained(mosquitto, "edgernn/cellar/status")["edgernn/cellar/status"]
    assert status["state"] == "online"  # what the availability template reads

    live = mosquitto_sub(mosquitto, "homeassistant/sensor/#", client_id="ha-watch")
    before = len([ln for ln in live.lines() if "/config " in ln])
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-t", "homeassistant/status", "-m", "online"], check=True
    )
    assert wait_until(lambda: len([ln for ln in live.lines() if "/config " in ln]) >= before + 3, 10)

    pub.remove_discovery()
    pub.close()
    time.sleep(0.2)
    assert _retained(mosquitto, "homeassistant/#") == {}
