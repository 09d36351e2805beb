"""Home Assistant discovery payloads: one device per stream, sensors per task, availability, units."""

from __future__ import annotations

import json

from edge_runtime.publish.discovery import discovery_messages, removal_messages
from tests.edge_runtime.publish.helpers import manifest


def _configs(task, **kw):
    msgs = discovery_messages(
        manifest(task, **{k: v for k, v in kw.items() if k in ("targets", "horizon")}),
        "gw1",
        kw.get("stream", "gw1"),
        units=kw.get("units"),
    )
    return {m.topic.split("/")[1] + "/" + m.topic.split("/")[3]: json.loads(m.payload) for m in msgs}


def test_classify_sensors_with_device_block_and_availability():
    c = _configs("classify")
    assert set(c) == {"sensor/label", "sensor/probability", "sensor/latency"}
    prob = c["sensor/probability"]
    assert prob["unit_of_measurement"] == "%" and prob["state_topic"] == "edgernn/gw1/state"
    assert prob["availability"] == [{"topic": "edgernn/gw1/status", "value_template": "{{ value_json.state }}"}]
    assert prob["device"]["identifiers"] == ["edgernn_gw1"] and prob["unique_id"] == "edgernn_gw1_probability"
    assert c["sensor/latency"]["entity_category"] == "diagnostic"


def test_anomaly_score_and_binary_sensor():
    c = _configs("anomaly")
    assert set(c) == {"sensor/anomaly_score", "binary_sensor/anomaly", "sensor/latency"}
    assert c["binary_sensor/anomaly"]["device_class"] == "problem"


def test_forecast_values_get_names_and_units_in_output_order():
    c = _configs("forecast", targets=["temp", "hum"], horizon=2, units={"temp": "°C"})
    assert c["sensor/temp_2"]["value_template"] == "{{ value_json['values'][2] }}"  # y[k * n_targets + j]
    assert c["sensor/hum_1"]["value_template"] == "{{ value_json['values'][1] }}"
    assert c["sensor/temp_1"]["unit_of_measurement"] == "°C" and "unit_of_measurement" not in c["sensor/hum_1"]


def test_gateway_streams_hang_off_the_gateway_and_removal_clears_them():
    msgs = discovery_messages(manifest("classify"), "gw1", "pump.7")
    cfg = json.loads(msgs[0].payload)
    assert msgs[0].topic == "homeassistant/sensor/edgernn_pump_7/label/config"  # HA allows [a-zA-Z0-9_-] only
    assert cfg["device"]["via_device"] == "edgernn_gw1" and cfg["state_topic"] == "edgernn/pump.7/state"
    assert all(m.payload == b"" and m.retain for m in removal_messages(msgs))
