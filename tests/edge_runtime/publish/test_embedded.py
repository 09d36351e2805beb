"""The in-process amqtt broker the demo uses when no broker URL is given."""

from __future__ import annotations

import socket
import time

import pytest

from edge_runtime.cli.listen import Listener
from edge_runtime.publish import open_publisher
from edge_runtime.publish.config import BrokerConfig
from tests.edge_runtime.publish.helpers import pred, wait_until

pytest.importorskip("amqtt", reason="the embedded broker needs amqtt (pip install 'edgernn[sim]')")


def test_embedded_broker_carries_predictions_and_stops(tmp_path):
    from edge_runtime.publish.embedded import embedded_broker

    with embedded_broker() as url:
        assert url.startswith("mqtt://127.0.0.1:")
        listener = Listener(url, BrokerConfig(), prefix="edgernn", devices=[])
        listener.start()
        pub = open_publisher(url, "demo1", state_dir=tmp_path, config=BrokerConfig(reconnect_max_delay=1.0))
        for i in range(300):
            pub.publish(pred("demo1", i))
        assert pub.flush(30)
        pub.close()
        assert wait_until(lambda: listener.tracker.unique >= 300, 20)
        listener.stop()
        rep = listener.report()["devices"]["demo1"]
        assert (rep["unique"], rep["missing"], rep["first"], rep["last"]) == (300, 0, 1, 300)
        port = int(url.rsplit(":", 1)[1])
    time.sleep(0.1)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


LATE_PUBACK = """
import time
import paho.mqtt.client as mqtt
from edge_runtime.publish.embedded import embedded_broker

with embedded_broker() as url:
    port = int(url.rsplit(":", 1)[1])
    # a subscriber that never acknowledges (as one starved of CPU for more than amqtt's 5 s would not)
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="slow", manual_ack=True)
    got = []
    sub.on_message = lambda c, u, m: got.append(m.mid)
    sub.connect("127.0.0.1", port)
    sub.subscribe("late/#", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(2):
        pub.publish("late/x", str(i), qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 15
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(6.0)  # past amqtt's 5 s PUBACK wait
    print("received", len(got), flush=True)
    pub.loop_stop(); pub.disconnect(); sub.loop_stop(); sub.disconnect()
"""


def test_a_late_puback_is_one_counted_line_not_a_traceback():
    """A subscriber that acknowledges nothing: amqtt gives up on each PUBACK after 5 s. The user sees one line
    when it first happens and the count when the broker stops; no traceback, and the messages did arrive."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", LATE_PUBACK], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "received 2" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len([line for line in lines if "acknowledged a message more than 5 s after" in line]) == 1, lines
    assert "embedded broker: 2 message(s) acknowledged late by a subscriber (> 5 s)" in lines, lines
    assert len(lines) == 2, lines
