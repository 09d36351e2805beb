"""TLS with a CA this test makes (openssl), password auth (mosquitto_passwd), and clear refusals."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from edge_runtime.publish import BrokerConfig, open_publisher
from edgernn.errors import AuthError, PublishError
from tests.edge_runtime.publish.conftest import TEST_PASSWORD, TEST_USER
from tests.edge_runtime.publish.helpers import FAST, pred, report_figures

pytestmark = pytest.mark.broker

USER, PASSWORD = TEST_USER, TEST_PASSWORD


def test_tls_and_password_from_the_environment_deliver_and_never_leak(
    secure_broker, pki, mosquitto_sub, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    sub = mosquitto_sub(
        secure_broker,
        "edgernn/#",
        client_id="audit-tls",
        extra=["--cafile", str(pki["ca"]), "-u", USER, "-P", PASSWORD],
    )
    monkeypatch.setenv("EDGERNN_MQTT_USERNAME", USER)
    monkeypatch.setenv("EDGERNN_MQTT_PASSWORD", PASSWORD)
    monkeypatch.setenv("EDGERNN_MQTT_CA", str(pki["ca"]))
    assert secure_broker.url.startswith("mqtts://127.0.0.1:")
    pub = open_publisher(secure_broker.url, "dev1", state_dir=tmp_path / "state")  # config from the environment
    for i in range(500):
        pub.publish(pred("dev1", i))
    pub.status({"readings": 500})
    assert pub.flush(30)
    pub.close()
    got = [p for p in sub.wait_for(500, 30) if p[0] == "dev1"]
    assert sorted(set(got)) == [("dev1", s) for s in range(1, 501)]
    statuses = [line for line in sub.lines() if "/status " in line]
    assert statuses and all(PASSWORD not in line for line in statuses)
    assert PASSWORD not in caplog.text and PASSWORD not in repr(BrokerConfig.load()[0])
    report_figures("TLS + password", {"delivered": len(set(got)), "lost": 500 - len(set(got))})


# Mosquitto 2.0 answers a wrong password with "not authorized" (135) in MQTT 5 too, not 134.
@pytest.mark.parametrize(
    ("protocol", "reason"), [("3.1.1", "not authorized (reason code 135)"), ("5", "(reason code 135)")]
)
def test_wrong_password_is_a_clear_error_not_a_retry_loop(secure_broker, pki, tmp_path, protocol, reason, caplog):
    cfg = BrokerConfig(username=USER, password="wrong-guess", ca_file=str(pki["ca"]), protocol=protocol)
    threads_before = threading.active_count()
    t0 = time.monotonic()
    with pytest.raises(AuthError) as err:
        open_publisher(secure_broker.url, "dev1", state_dir=tmp_path / "state", config=cfg)
    message = str(err.value)
    assert f"broker {secure_broker.url} refused the login" in message and reason in message, message
    assert "as user 'dev1'" in message and "wrong-guess" not in message and "wrong-guess" not in caplog.text
    assert time.monotonic() - t0 < 10
    time.sleep(0.5)
    assert threading.active_count() <= threads_before  # paho's loop and the worker stopped: no retrying
    open_publisher(
        secure_broker.url,
        "dev1",
        state_dir=tmp_path / "state",  # the outbox was released
        config=replace(cfg, password=PASSWORD),
    ).close()


def test_wrong_password_makes_listen_exit_non_zero_with_one_line(secure_broker, pki, tmp_path):
    env = {"EDGERNN_MQTT_USERNAME": USER, "EDGERNN_MQTT_PASSWORD": "nope-nope", "EDGERNN_MQTT_CA": str(pki["ca"])}
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "edgernn", "listen", "--broker", secure_broker.url, "--timeout", "5"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("edgernn listen: error: broker mqtts://127.0.0.1:")
    assert "refused the login" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "nope-nope" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_certificate_from_another_ca_is_refused_with_the_reason(secure_broker, pki, tmp_path):
    cfg = replace(FAST, username=USER, password=PASSWORD, ca_file=str(pki["other_ca"]))
    expected = r"TLS with broker mqtts://127\.0\.0\.1:\d+ failed: certificate verify failed: self-signed"
    with pytest.raises(PublishError, match=expected):
        open_publisher(secure_broker.url, "dev1", config=cfg)


def test_status_payload_holds_no_configuration(secure_broker, pki, tmp_path, mosquitto_sub):
    """The retained status names the device, never the login: a user name unlike the device name (so a leak
    cannot hide behind the device field), a client id, the password and the CA path all stay out of it."""
    device = "sensor-7"
    assert device != USER and USER not in device
    sub = mosquitto_sub(
        secure_broker,
        "edgernn/+/status",
        client_id="audit-status-tls",
        extra=["--cafile", str(pki["ca"]), "-u", USER, "-P", PASSWORD],
    )
    cfg = replace(FAST, username=USER, password=PASSWORD, ca_file=str(pki["ca"]), client_id="secret-client")
    pub = open_publisher(secure_broker.url, device, config=cfg)
    pub.status({"readings": 1})
    pub.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any('"offline"' in ln for ln in sub.lines()):
        time.sleep(0.05)
    payloads = [json.loads(ln.split(" ", 1)[1]) for ln in sub.lines() if ln.startswith(f"edgernn/{device}/status ")]
    assert {p["state"] for p in payloads} >= {"online", "offline"}
    assert all(p["device"] == device for p in payloads)
    text = json.dumps(payloads)
    for secret in (USER, "secret-client", PASSWORD, str(pki["ca"])):
        assert secret not in text, secret
    for p in payloads:  # what a status may hold, and nothing else
        assert set(p) <= {"state", "device", "time", "edgernn", "outbox", "counters", "reason"}, p
