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
