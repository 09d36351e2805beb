"""deploy/mosquitto.conf, as shipped: it parses, and does what it says — a subscriber that was away gets
every QoS 1 message past the default queue of 1000, even after the broker was killed meanwhile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge_runtime.publish import BrokerConfig, open_publisher
from tests.edge_runtime.publish.conftest import TEST_PASSWORD, TEST_USER
from tests.edge_runtime.publish.helpers import pred, report_figures

pytestmark = pytest.mark.broker

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto.conf"


def _template(passwd: Path) -> str:
    text = DEPLOY.read_text().replace("{", "{{").replace("}", "}}")
    text = text.replace("persistence_location /var/lib/mosquitto/", "persistence_location {data}")
    text = text.replace("\nlistener 1883\n", "\nlistener {port} 127.0.0.1\n")
    text = text.replace("password_file /etc/mosquitto/passwd", f"password_file {passwd}")
    assert "{port}" in text and "{data}" in text, "deploy/mosquitto.conf changed shape; update this test"
    return text.replace("log_dest syslog", "log_dest stderr")


def test_recommended_config_keeps_queued_messages_through_a_kill(mosquitto_factory, mosquitto_sub, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), TEST_USER, TEST_PASSWORD], check=True)
    broker = mosquitto_factory(template=_template(passwd))
    creds = ["-u", TEST_USER, "-P", TEST_PASSWORD]
    away = mosquitto_sub(broker, "edgernn/+/prediction", client_id="away", extra=creds)
    away.stop()  # its persistent session stays on the broker, queueing for it
    cfg = BrokerConfig(username=TEST_USER, password=TEST_PASSWORD, reconnect_max_delay=1.0)
    pub = open_publisher(broker.url, "dev1", state_dir=tmp_path / "state", config=cfg)
    for i in range(3000):
        pub.publish(pred("dev1", i))
    assert pub.flush(60)
    pub.close()
    broker.kill()
    broker.start()
    back = mosquitto_sub(broker, "edgernn/+/prediction", client_id="away", extra=creds)
    got = [p for p in back.wait_for(3000, 60) if p[0] == "dev1"]
    report_figures("deploy config, subscriber away + broker SIGKILL", {"queued": 3000, "received": len(set(got))})
    assert sorted(set(got)) == [("dev1", s) for s in range(1, 3001)]
