"""`edgernn run`: readings in from CSV, stdin or MQTT; one JSON line or MQTT message per prediction out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgernn.cli import main
from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE, make_model, numpy_bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("run") / "b", make_model(cell="lstm", num_layers=2), warmup=2)


def _csv(path: Path, n: int = 40, streams: int = 2) -> Path:
    rng = np.random.default_rng(0)
    rows = ["t,device," + ",".join(FEATURES) + ",activity"]
    for i in range(n):
        cells = [f"{v:.4f}" for v in rng.normal(OFFSET, SCALE)]
        if i == 10:
            cells[1] = "nan"
        if i == 11:
            cells[2] = ""
        if i == 12:
            cells[0] = "oops"
        rows.append(f"{1.7e9 + i * 0.05:.2f},d{i % streams}," + ",".join(cells) + ",walk")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_replay_prints_a_line_per_prediction_and_a_summary(bundle, tmp_path, capsys):
    csv = _csv(tmp_path / "walk.csv")
    state = tmp_path / "state"
    code = main(["run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy", "--state-dir", str(state)])
    assert code == 0
    out, err = capsys.readouterr()
    preds = [json.loads(line) for line in out.splitlines()]
    assert len(preds) == 40
    assert {p["stream"] for p in preds} == {"d0", "d1"}
    assert [p["seq"] for p in preds if p["stream"] == "d0"] == list(range(1, 21))
    assert preds[0]["flags"] == ["warming_up"] and preds[4]["flags"] == []
    assert preds[10]["flags"] == ["held:ay"] and preds[11]["flags"] == ["held:az"] and preds[12]["flags"] == ["held:ax"]
    assert preds[0]["time"] == pytest.approx(1.7e9)
    assert "40 readings, 40 predictions" in err
    assert "bad readings: missing 1, non_finite 1, non_number 1" in err
    assert "latency per reading: p50" in err and "backend numpy (numpy-fp32)" in err
    assert (state / "state-dev1.npz").is_file()


def test_csv_at_the_recorded_rate_takes_the_recorded_time(bundle, tmp_path, capsys):
    csv = _csv(tmp_path / "walk.csv", n=6)  # 0.25 s of readings
    start = time.monotonic()
    assert main(["run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy", "--rate", "recorded"]) == 0
    assert time.monotonic() - start >= 0.24
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_device_config_carries_flags_and_flags_win(bundle, tmp_path, capsys):
    csv = _csv(tmp_path / "walk.csv", n=14)
    cfg = tmp_path / "dev.toml"
    cfg.write_text(
        f'bundle = "{bundle}"\nsource = "csv:{csv}"\nbackend = "numpy"\ndevice = "kitchen"\n'
        f'state_dir = "{tmp_path / "s"}"\n[policies]\nnon_finite = "skip"\n'
    )
    assert main(["run", "--config", str(cfg), "--limit", "12"]) == 0
    out, err = capsys.readouterr()
    # 12 readings (the flag), the NaN one skipped (the config's policy), state under the config's device id
    assert len(out.splitlines()) == 11 and "12 readings, 11 predictions, 1 skipped" in err
    assert (tmp_path / "s" / "state-kitchen.npz").is_file()
    cfg.write_text("colour = 'blue'\n" + cfg.read_text())
    assert main(["run", "--config", str(cfg)]) == 2
    assert "unknown setting 'colour'; allowed:" in capsys.readouterr().err
    assert main(["run", str(bundle), "--source", f"csv:{csv}", "--policy", "missing=drop"]) == 2
    assert "policy missing='drop' is not allowed" in capsys.readouterr().err


def test_unknown_source_is_refused_naming_the_kinds(bundle, capsys):
    assert main(["run", str(bundle), "--source", "carrier-pigeon", "--backend", "numpy"]) == 2
    assert "unknown source 'carrier-pigeon'; allowed: csv:PATH, stdin" in capsys.readouterr().err


def _spawn(args: list[str], **kw) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "edgernn", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kw,
    )


def test_stdin_json_lines_and_sigterm_saves_state(bundle, tmp_path):
    state = tmp_path / "state"
    proc = _spawn(["run", str(bundle), "--source", "stdin", "--backend", "numpy", "--state-dir", str(state)])
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    now = time.time()
    lines = [
        json.dumps({"t": now, **dict(zip(FEATURES, OFFSET, strict=True))}),
        "this is not json",
        json.dumps({"t": now + 0.1, "stream": "other", "reading": dict(zip(FEATURES, OFFSET, strict=True))}),
        json.dumps(OFFSET),
    ]
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.flush()
    out = [json.loads(proc.stdout.readline()) for _ in range(3)]  # blocks until each is printed
    assert [p["stream"] for p in out] == ["dev1", "other", "dev1"]
    proc.send_signal(signal.SIGTERM)  # parked in a blocking read of stdin
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err and "unparsable 1" in err and "3 readings, 3 predictions" in err
    assert (state / "state-dev1.npz").is_file()


@pytest.mark.broker
def test_gateway_from_mqtt_readings_to_mqtt_predictions(bundle, tmp_path, mosquitto):
    from tests.fixtures.mosquitto import MosquittoSub

    sub = MosquittoSub(mosquitto, "edgernn/+/prediction", tmp_path / "sub.txt", "test-sub").start()
    state = tmp_path / "state"
    args = ["run", str(bundle), "--source", f"mqtt:{mosquitto.url}", "--mqtt", mosquitto.url]
    proc = _spawn([*args, "--backend", "numpy", "--state-dir", str(state), "--device", "gw"])
    try:
        import paho.mqtt.client as mqtt

        online = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            if b'"online"' in msg.payload:
                online.set()

        client.on_message = on_message
        client.connect("127.0.0.1", mosquitto.port)
        client.subscribe("edgernn/gw/status", qos=1)
        client.loop_start()
        # the gateway subscribes to readings before it starts publishing: once it says online, it listens
        assert online.wait(timeout=30), "the gateway never published status online"
        now = time.time()
        for i in range(10):
            for sensor in ("s1", "s2", "s3"):
                body = {"t": now + 0.05 * i, **dict(zip(FEATURES, OFFSET, strict=True))}
                client.publish(f"edgernn/{sensor}/reading", json.dumps(body), qos=1).wait_for_publish(5)
        got = sub.wait_for(30, timeout=20)
        client.loop_stop()
        client.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        sub.stop()
    assert sorted(set(got)) == [(s, q) for s in ("s1", "s2", "s3") for q in range(1, 11)], err
    assert proc.returncode == 0 and "30 readings, 30 predictions" in err


def test_a_serial_port_that_cannot_be_opened_is_one_clear_error(bundle, capsys):
    assert main(["run", str(bundle), "--source", "serial:/dev/edgernn-no-such-port@9600", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert "needs pyserial" in err or "cannot open serial port /dev/edgernn-no-such-port at 9600 baud" in err


def test_the_service_config_skeleton_is_a_valid_device_config(tmp_path):
    from edge_runtime.cli.service import render
    from edge_runtime.device.settings import broker_config, resolve

    _, skeleton = render(str(tmp_path / "bundle"), "kitchen-imu", "pi", tmp_path)
    path = tmp_path / "kitchen-imu.toml"
    path.write_text(skeleton.replace("# username", "username"))
    s = resolve({}, str(path))
    assert (s.device, s.source, s.backend) == ("kitchen-imu", "serial:/dev/ttyUSB0", "auto")
    assert str(s.mqtt).startswith("mqtt://") and s.state_dir == "/var/lib/edgernn-kitchen-imu"
    assert broker_config(s).username == "sensor"
