"""A row the MQTT client can never send (issue 14): counted and dropped, so the rows behind it are delivered."""

from __future__ import annotations

import pytest

from edge_runtime.publish import open_publisher
from edge_runtime.publish.outbox import OUTBOX_FILE, Outbox
from edge_runtime.stream.prediction import Prediction


@pytest.mark.broker
def test_a_topic_paho_refuses_left_in_the_outbox_does_not_wedge_delivery(mosquitto, mosquitto_sub, tmp_path, caplog):
    # an outbox written by an older edgernn, whose stream names had no length bound
    long_name = "x" * 70_000
    box = Outbox(tmp_path / OUTBOX_FILE)
    box.append(long_name, f"edgernn/{long_name}/prediction", lambda seq: b'{"seq": %d}' % seq)
    box.commit()
    box.close()
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction")
    pub = open_publisher(mosquitto.url, "dev1", state_dir=tmp_path)
    try:
        pub.publish(Prediction(seq=0, time=1.0, stream="s1", values=[0.5]))
        assert pub.flush(10), "delivery stalled behind the refused row"
        assert sub.wait_for(1, timeout=10) == [("s1", 1)]
        assert pub.dropped == 1 and pub.depth == 0
    finally:
        pub.close()
    assert any("refuses its topic" in r.getMessage() and len(r.getMessage()) < 200 for r in caplog.records)
