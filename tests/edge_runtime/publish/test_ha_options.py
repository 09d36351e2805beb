"""Home Assistant presentation without Home Assistant: templates on every kind of valid payload, the state
rate, units and device classes from the device config, the gateway announced first.
(tests/integrations/ runs the same against a real Home Assistant.)"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge_runtime.device.settings import load_config, resolve
from edge_runtime.publish import HaOptions, MemoryPublisher
from edge_runtime.publish.discovery import Announcer, discovery_messages
from edge_runtime.stream.prediction import Prediction
from edgernn.errors import ConfigError
from tests.edge_runtime.publish.helpers import manifest, pred

# Home Assistant renders with a sandbox and warns (or fails) on an undefined field: StrictUndefined raises.
ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)

PAYLOADS: list[dict[str, Any]] = [  # every shape docs/prediction.schema.json allows for these tasks
    {"seq": 1, "time": 1.7e9, "stream": "s", "values": [0.1, 0.9], "label": "walk", "probability": 0.9,
     "latency_us": 90.0, "model": "ab", "flags": []},
    {"seq": 2, "time": 1.7e9, "stream": "s", "values": [None, None], "label": "walk", "probability": None,
     "latency_us": 90.0, "model": "ab", "flags": []},  # NaN from the model
    {"seq": 3, "time": 1.7e9, "stream": "s", "values": [20.0], "latency_us": 90.0, "model": "ab",
     "flags": ["warming_up"]},  # no score, no verdict yet
    {"seq": 4, "time": 1.7e9, "stream": "s", "values": [20.0], "anomaly": None, "latency_us": 90.0, "model": "ab",
     "flags": ["held:a"]},
    {"seq": 5, "time": 1.7e9, "stream": "s", "values": [20.0], "anomaly": 4.2, "is_anomaly": True,
     "latency_us": 90.0, "model": "ab", "flags": []},
    {"seq": 6, "time": 1.7e9, "stream": "s", "values": [21.0, None], "interval": [[20.0, 22.0], [None, None]],
     "latency_us": 90.0, "model": "ab", "flags": []},
]  # fmt: skip


def _render(template: str, payload: dict) -> str:
    return ENV.from_string(template).render(value_json=payload, this={"state": "idle"})


@pytest.mark.parametrize("task", ["classify", "anomaly", "forecast"])
def test_templates_render_on_every_valid_payload(task):
    m = manifest(task, targets=["t", "h"] if task == "forecast" else None)
    configs = [json.loads(msg.payload) for msg in discovery_messages(m, "d", "s")]
    for cfg in configs:
        for payload in PAYLOADS:
            if task == "forecast" and len(payload["values"]) != 2:
                continue
            state = _render(cfg["value_template"], payload)
            if "json_attributes_template" in cfg:
                assert isinstance(json.loads(_render(cfg["json_attributes_template"], payload)), dict)
            if cfg["unique_id"].endswith("_anomaly") and "is_anomaly" not in payload:
                assert state == ""  # HA ignores an empty state: the alarm keeps its state, no flapping
            if cfg["unique_id"].endswith("_probability"):
                expected = "" if "probability" not in payload else "None" if payload["probability"] is None else "90.0"
                assert state == expected  # NaN: "None" (unknown); no probability: "" (kept)


def test_ha_state_is_rate_limited_and_follows_label_changes_without_thinning_predictions():
    pub = MemoryPublisher("dev1", discovery=True, manifest=manifest("classify"), ha=HaOptions(state_interval=1.0))
    assert pub._announcer is not None and pub._announcer.throttle is not None
    now = [0.0]
    pub._announcer.throttle.clock = lambda: now[0]
    for i in range(100):  # 4 s at 25 Hz; the label changes once, at i = 60
        p = pred("dev1", i)
        p.label = "run" if i >= 60 else "walk"
        pub.publish(p)
        if i % 25 == 24:
            pub.status({})  # the device loop's status, once a second
        now[0] += 0.04
    states = [m.json() for m in pub.messages if m.topic == "edgernn/dev1/state"]
    assert len(pub.predictions()) == 100  # the full stream is untouched
    assert 5 <= len(states) <= 7  # about one a second, plus the label change
    assert next(s["seq"] for s in states if s["label"] == "run") == 61  # the change went out at once
    assert all(m.retain for m in pub.messages if m.topic.endswith("/state"))
    pub.publish(pred("dev1", 100))  # held back ...
    pub.close()
    assert json.loads(pub.retained["edgernn/dev1/state"])["seq"] == 101  # ... and sent at close


def test_removal_clears_the_retained_state_too():
    pub = MemoryPublisher("gw", discovery=True, manifest=manifest("classify"))
    pub.publish(pred("s1"))
    assert "edgernn/s1/state" in pub.retained
    pub.remove_discovery()
    assert not [t for t in pub.retained if t.startswith("homeassistant/") or t.endswith("/state")]


def test_a_missing_verdict_is_no_change_and_interval_zero_reads_the_prediction_topic():
    m = manifest("anomaly")
    pub = MemoryPublisher("d", discovery=True, manifest=m, ha=HaOptions(state_interval=60))
    for verdict in (True, None, True):
        pub.publish(Prediction(0, 1.7e9, "d", [1.0], anomaly=None if verdict is None else 5.0, is_anomaly=verdict))
    assert len([m for m in pub.messages if m.topic == "edgernn/d/state"]) == 1
    cfg = json.loads(discovery_messages(m, "d", "d", ha=HaOptions(state_interval=0))[0].payload)
    assert cfg["state_topic"] == "edgernn/d/prediction"


def test_units_and_device_classes_from_the_device_config(tmp_path):
    cfg = tmp_path / "dev.toml"
    cfg.write_text(
        'bundle = "b"\ndiscovery = true\nunits = {temp = "°C", hum = "%"}\n'
        'device_classes = {temp = "temperature", hum = "humidity"}\nha_state_interval = 2\nha_expire_after = 300\n'
    )
    ha = resolve({}, str(cfg)).ha_options()
    assert ha == HaOptions({"temp": "°C", "hum": "%"}, {"temp": "temperature", "hum": "humidity"}, 2.0, 300.0)
    m = manifest("forecast", targets=["temp", "hum"])
    c = {json.loads(x.payload)["unique_id"]: json.loads(x.payload) for x in discovery_messages(m, "d", "d", ha=ha)}
    temp = c["edgernn_d_temp_1"]
    assert temp["unit_of_measurement"] == "°C" and temp["device_class"] == "temperature"
    assert temp["expire_after"] == 300 and temp["json_attributes_topic"] == "edgernn/d/state"
    assert "expire_after" not in c["edgernn_d_latency"]  # diagnostic
    assert "units" in load_config(cfg)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('device_classes = {temp = "hot"}', "'hot' for 'temp' is not a numeric Home Assistant sensor device class"),
        ('units = {temp = "C"}\ndevice_classes = {temp = "temperature"}', "'C' for 'temp' does not fit"),
        ("ha_state_interval = -1", "ha_state_interval=-1.0; allowed: 0"),
        ('units = "°C"', "units must map target names to strings"),
    ],
)
def test_bad_home_assistant_settings_are_refused_by_name(tmp_path, toml, message):
    cfg = tmp_path / "dev.toml"
    cfg.write_text(f'bundle = "b"\n{toml}\n')
    with pytest.raises(ConfigError, match=message):
        resolve({}, str(cfg))


def test_a_unit_for_a_target_the_bundle_lacks_is_refused_at_start():
    with pytest.raises(ConfigError, match="'tmp' is not a target of this bundle; targets: temp"):
        MemoryPublisher("d", discovery=True, manifest=manifest("forecast"), ha=HaOptions(units={"tmp": "°C"}))


def test_the_gateway_is_announced_before_its_streams():
    a = Announcer(manifest("classify"), "gw", prefix="edgernn")
    first = a.new_stream("s1")
    assert first[0].topic == "homeassistant/sensor/edgernn_gw/outbox_depth/config"
    assert json.loads(first[0].payload)["device"]["identifiers"] == ["edgernn_gw"]
    assert json.loads(first[1].payload)["device"]["via_device"] == "edgernn_gw"
    assert not any("edgernn_gw/" in m.topic for m in a.new_stream("s2"))  # once is enough
    assert a.all()[0].topic == first[0].topic  # and first again at every (re)announce


def test_expire_after_follows_the_sample_rate():
    assert HaOptions().expire_after_for(None) == 60
    assert HaOptions().expire_after_for(1 / 300) == 3000  # a reading every 5 min: 10 readings
    assert HaOptions(expire_after=0).expire_after_for(25.0) is None
    assert HaOptions(state_interval=30).expire_after_for(25.0) == 300  # 10 states


def test_edgernn_run_hands_the_device_configs_settings_to_discovery(tmp_path, capsys):
    from edgernn.cli import main
    from tests.edge_runtime.conftest import make_model, numpy_bundle

    bundle = numpy_bundle(tmp_path / "b", make_model(cell="gru"), warmup=2)  # a classifier: no targets
    cfg = tmp_path / "dev.toml"
    cfg.write_text(
        f'bundle = "{bundle}"\nsource = "csv:{tmp_path / "none.csv"}"\nmqtt = "mqtt://127.0.0.1:1"\n'
        'discovery = true\nunits = {temp = "°C"}\n'
    )
    (tmp_path / "none.csv").write_text("t,ax,ay,az,temp\n")  # every feature column: the file itself is fine
    assert main(["run", "--config", str(cfg)]) == 2
    assert "units: 'temp' is not a target of this bundle" in capsys.readouterr().err
