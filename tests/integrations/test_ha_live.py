"""Home Assistant core, headless, reading what the toolkit publishes through a real Mosquitto.

One run covers what a user would trip over: warm-up, a held reading, NaN from the model, a restart of the
device, a gateway with two streams, a 50 Hz stream, forecast units and device classes. Afterwards HA's log
holds no warning or error, its registries say what its UI would show; and after Home Assistant itself
restarts, the retained state is back without a new prediction.
"""

from __future__ import annotations

import math
import time
from itertools import groupby

import pytest

from edge_runtime.publish import HaOptions, open_publisher
from edge_runtime.stream.prediction import Prediction
from tests.edge_runtime.publish.helpers import FAST, manifest
from tests.integrations.ha_process import HomeAssistant

pytestmark = [pytest.mark.broker, pytest.mark.slow]
NAN = math.nan


def _anomaly(stream: str, score: float | None, verdict: bool | None, flags: list[str] | None = None) -> Prediction:
    return Prediction(
        seq=0, time=time.time(), stream=stream, values=[20.0], anomaly=score, is_anomaly=verdict,
        latency_us=90.0, model="0123456789ab", flags=flags or [],
    )  # fmt: skip


def _classify(stream: str, i: int, probability: float = 0.7) -> Prediction:
    return Prediction(
        seq=0, time=time.time(), stream=stream, values=[0.1, 0.2, 0.7], label="walk", probability=probability,
        latency_us=100.0 + i, model="0123456789ab",
    )  # fmt: skip


@pytest.fixture
def home_assistant(ha_python, mosquitto, tmp_path):
    ha = HomeAssistant(ha_python, tmp_path / "ha", mosquitto.port)
    ha.start()
    yield ha
    ha.stop()


def _collapse(states: list[str]) -> list[str]:
    return [s for s, _ in groupby(states)]


def test_home_assistant_shows_it_all_without_a_warning(home_assistant, mosquitto, tmp_path):
    ha = home_assistant
    step = 0.35  # longer than the state interval below, so every step reaches HA
    gw_opts = HaOptions(state_interval=0.25)
    gw = open_publisher(
        mosquitto.url, "gw", config=FAST, discovery=True, manifest=manifest("anomaly", targets=["vib"]),
        state_dir=tmp_path / "gw", ha=gw_opts,
    )  # fmt: skip
    story = [
        (None, None, ["warming_up"]),  # no score yet, no verdict
        (0.4, False, []),
        (5.0, True, []),
        (None, None, ["held:vib"]),  # a held reading: no verdict, the alarm must stay on
        (4.0, True, []),
        (NAN, None, []),  # the model produced NaN: score null
        (0.3, False, []),
    ]
    for stream in ("pump1", "pump2"):  # announced with the first prediction; HA sets entities up meanwhile
        gw.publish(_anomaly(stream, None, None, ["warming_up"]))
    assert ha.wait_for("binary_sensor.pump2_anomaly=unknown", 30)
    for score, verdict, flags in story:
        for stream in ("pump1", "pump2"):
            gw.publish(_anomaly(stream, score, verdict, flags))
        time.sleep(step)
    gw.close()  # a restart of the device: offline, then online again with the same outbox
    time.sleep(step)
    gw = open_publisher(
        mosquitto.url, "gw", config=FAST, discovery=True, manifest=manifest("anomaly", targets=["vib"]),
        state_dir=tmp_path / "gw", ha=gw_opts,
    )  # fmt: skip
    gw.publish(_anomaly("pump1", 0.2, False))

    imu = open_publisher(
        mosquitto.url, "imu", config=FAST, discovery=True, manifest=manifest("classify"), state_dir=tmp_path / "imu",
        ha=HaOptions(state_interval=1.0),
    )  # fmt: skip
    imu.publish(_classify("imu", -1))
    assert ha.wait_for("sensor.imu_latency=0.099", 30)
    start = time.monotonic()
    for i in range(100):  # 50 Hz for 2 s
        imu.publish(_classify("imu", i, NAN if i == 50 else 0.7))
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    imu.status({"readings": 100})  # the device loop does this every second: held-back states go out

    cellar = open_publisher(
        mosquitto.url, "cellar", config=FAST, discovery=True, state_dir=tmp_path / "cellar",
        manifest=manifest("forecast", targets=["temp", "hum"]),
        ha=HaOptions(units={"temp": "°C", "hum": "%"}, device_classes={"temp": "temperature", "hum": "humidity"}),
    )  # fmt: skip
    cellar.publish(Prediction(seq=0, time=time.time(), stream="cellar", values=[21.5, NAN], latency_us=80.0))
    for pub in (gw, imu, cellar):
        assert pub.flush(10)
    time.sleep(1.5)  # HA handles the last messages
    for pub in (gw, imu):
        pub.close()
    time.sleep(0.5)
    ha.stop()  # cellar stays online through Home Assistant's restart below

    assert ha.problems() == []

    entities = {e["unique_id"]: e for e in ha.registry("entity")}
    alarm = entities["edgernn_pump1_anomaly"]["entity_id"]
    alarm_states = _collapse([s for s in ha.states(alarm) if s != "unavailable"])
    assert alarm_states.count("on") == 1, alarm_states  # the held reading did not turn the alarm off and on
    assert "on" in alarm_states and alarm_states[-1] == "off"
    score_states = ha.states(entities["edgernn_pump1_anomaly_score"]["entity_id"])
    assert {"0.4", "5.0", "4.0", "unknown"} <= set(score_states), score_states  # NaN: unknown, not an error

    latency = ha.states(entities["edgernn_imu_latency"]["entity_id"])
    burst = [s for s in latency[latency.index("0.099") + 1 :] if s.replace(".", "").isdigit()]
    assert 2 <= len(burst) <= 4, latency  # 100 predictions in 2 s at ha_state_interval 1 s: one a second
    prob = ha.states(entities["edgernn_imu_probability"]["entity_id"])
    assert "70.0" in prob

    temp = entities["edgernn_cellar_temp_1"]
    assert temp["original_device_class"] == "temperature" and temp["unit_of_measurement"] == "°C"
    assert entities["edgernn_cellar_hum_1"]["unit_of_measurement"] == "%"
    assert "21.5" in ha.states(temp["entity_id"])
    assert ha.states(entities["edgernn_cellar_hum_1"]["entity_id"])[-1:] in (["unknown"], ["unavailable"])

    devices = {tuple(i) for d in ha.registry("device") for i in d["identifiers"]}
    by_id = {next(iter(d["identifiers"]))[1]: d for d in ha.registry("device")}
    assert ("mqtt", "edgernn_gw") in devices
    for stream in ("pump1", "pump2"):
        assert by_id[f"edgernn_{stream}"]["via_device_id"] == by_id["edgernn_gw"]["id"]  # under the gateway
    assert entities["edgernn_pump1_anomaly_score"]["capabilities"] == {"state_class": "measurement"}

    # Home Assistant restarts: it announces itself, the device re-sends its configs, the retained state is read
    ha.log_file.rename(ha.log_file.with_suffix(".first.log"))
    ha.start()
    assert ha.wait_for(f"{temp['entity_id']}=21.5", 30), ha.text()[-3000:]
    cellar.close()
    time.sleep(0.5)
    ha.stop()
    assert ha.problems() == []
