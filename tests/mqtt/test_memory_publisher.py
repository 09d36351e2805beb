"""MemoryPublisher: the fake others test against behaves like the real publisher (seq, outage, bounds)."""

from __future__ import annotations

import json

import pytest

from edge_runtime.publish import MemoryPublisher, OutboxConfig, open_publisher
from edgernn.errors import ConfigError, PublishError
from tests.mqtt.helpers import manifest, pred


def test_open_publisher_without_url_is_the_memory_fake_and_assigns_seq_per_stream():
    pub = open_publisher(None, "gw1")
    assert isinstance(pub, MemoryPublisher)
    p = pred("s1")
    assert pub.publish(p) == 1 and p.seq == 1
    assert [pub.publish(pred(s)) for s in ("s1", "s2", "s1")] == [2, 1, 3]
    assert [(d["stream"], d["seq"]) for d in pub.predictions()] == [("s1", 1), ("s1", 2), ("s2", 1), ("s1", 3)]
    assert [m.topic for m in pub.messages if m.topic.endswith("prediction")][:3] == [
        "edgernn/s1/prediction",
        "edgernn/s1/prediction",
        "edgernn/s2/prediction",
    ]
    assert pub.delivered == 4 and pub.depth == 0
    pub.close()


def test_status_is_retained_online_then_offline_with_counters():
    pub = MemoryPublisher("dev1", prefix="site/edgernn")
    pub.status({"readings": 10, "bad": {"nan": 2}})
    status = json.loads(pub.retained["site/edgernn/dev1/status"])
    assert status["state"] == "online" and status["counters"] == {"readings": 10, "bad": {"nan": 2}}
    assert status["outbox"]["depth"] == 0 and status["outbox"]["dropped"] == 0
    pub.close()
    assert json.loads(pub.retained["site/edgernn/dev1/status"])["state"] == "offline"
    with pytest.raises(PublishError, match="cannot publish: the publisher is closed"):
        pub.publish(pred())


def test_outage_fills_the_outbox_then_drains_in_order():
    pub = MemoryPublisher("dev1")
    pub.publish(pred())
    pub.online = False
    assert json.loads(pub.retained["edgernn/dev1/status"])["state"] == "offline"  # the broker's last will
    for i in range(50):
        pub.publish(pred(i=i))
    assert pub.depth == 50 and len(pub.predictions()) == 1
    pub.online = True
    assert [d["seq"] for d in pub.predictions()] == list(range(1, 52))
    assert pub.depth == 0 and json.loads(pub.retained["edgernn/dev1/status"])["state"] == "online"


def test_publish_many_is_publish_of_each_in_order_online_and_through_an_outage():
    one, many = MemoryPublisher("dev1"), MemoryPublisher("dev1")
    batches = [[pred("s1", i=i), pred("s2", i=i), pred("s1", i=i + 1)] for i in range(0, 6, 2)]
    for k, preds in enumerate(batches):
        if k == 1:  # the second batch waits in the outbox, the third goes behind it once the broker is back
            one.online = many.online = False
        if k == 2:
            one.online = many.online = True
        seqs = many.publish_many(preds)
        assert seqs == [one.publish(p) for p in preds] == [p.seq for p in preds]
    assert many.predictions() == one.predictions() and many.delivered == one.delivered == 9
    assert [m.topic for m in many.messages] == [m.topic for m in one.messages]  # statuses too (their times differ)
    assert [(d["stream"], d["seq"]) for d in many.predictions()][-3:] == [("s1", 5), ("s2", 3), ("s1", 6)]
    with pytest.raises(ConfigError, match="stream"):  # a bad name: nothing of the batch is published
        many.publish_many([pred("s1"), pred("no/slash")])
    assert many.publish(pred("s1")) == 7


def test_bounded_outage_drops_oldest_and_says_so():
    pub = MemoryPublisher("dev1", outbox=OutboxConfig(max_rows=20))
    pub.online = False
    for i in range(100):
        pub.publish(pred(i=i))
    pub.online = True
    assert [d["seq"] for d in pub.predictions()] == list(range(81, 101))
    assert pub.dropped == 80
    pub.status({})
    assert json.loads(pub.retained["edgernn/dev1/status"])["outbox"]["dropped"] == 80


def test_state_dir_keeps_seq_across_restarts(tmp_path):
    pub = MemoryPublisher("dev1", state_dir=tmp_path)
    for i in range(5):
        pub.publish(pred(i=i))
    pub.close()
    pub = MemoryPublisher("dev1", state_dir=tmp_path)
    assert pub.publish(pred()) == 6
    assert pub.flush() and [d["seq"] for d in pub.predictions()] == [6]
    pub.close()


def test_discovery_needs_the_manifest_and_is_resent_when_home_assistant_comes_online():
    with pytest.raises(ConfigError, match="needs the bundle manifest"):
        MemoryPublisher("dev1", discovery=True)
    pub = MemoryPublisher("dev1", discovery=True, manifest=manifest("classify"))
    pub.publish(pred())
    configs = [m for m in pub.messages if m.topic.startswith("homeassistant/")]
    assert {m.topic for m in configs} == {
        "homeassistant/sensor/edgernn_dev1/label/config",
        "homeassistant/sensor/edgernn_dev1/probability/config",
        "homeassistant/sensor/edgernn_dev1/latency/config",
        "homeassistant/sensor/edgernn_dev1/outbox_depth/config",  # the device itself
    }
    assert all(m.retain for m in configs)
    pub.receive("homeassistant/status", "online")
    assert len([m for m in pub.messages if m.topic.startswith("homeassistant/")]) == 8
    pub.remove_discovery()
    assert not [t for t in pub.retained if t.startswith("homeassistant/")]


@pytest.mark.parametrize("bad", ["", "a/b", "dev+", "#", " dev"])
def test_bad_device_names_are_refused(bad):
    with pytest.raises(ConfigError, match="invalid device"):
        open_publisher(None, bad)
