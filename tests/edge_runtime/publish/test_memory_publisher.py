"""MemoryPublisher's own controls and fast paths. What it shares with the paho publisher (seq, status, outage,
bounds, restarts, discovery, names) is asserted on both in test_publisher_conformance.py."""

from __future__ import annotations

import json

import pytest

from edge_runtime.publish import MemoryPublisher
from edgernn.errors import ConfigError
from tests.edge_runtime.publish.helpers import pred


def test_going_offline_leaves_the_last_will_as_the_broker_would_and_nothing_is_delivered_meanwhile():
    pub = MemoryPublisher("dev1")
    pub.publish(pred())
    pub.online = False
    assert json.loads(pub.retained["edgernn/dev1/status"])["state"] == "offline"  # the broker's last will
    pub.publish(pred(i=1))
    assert len(pub.predictions()) == 1 and pub.delivered_seqs == [1]
    pub.online = True
    assert json.loads(pub.retained["edgernn/dev1/status"])["state"] == "online"


def test_delivered_seqs_follow_every_delivery_path_in_order():
    """What the simulator counts deliveries by (never parsing payloads): handover, a batch, a drain."""
    pub = MemoryPublisher("gw1")
    pub.publish(pred("a"))
    pub.publish_many([pred("a"), pred("b")])
    pub.online = False
    pub.publish_many([pred("a"), pred("b")])
    assert pub.delivered_seqs == [1, 2, 1]
    pub.online = True
    assert pub.delivered_seqs == [1, 2, 1, 3, 2]
    assert pub.delivered_seqs == [d["seq"] for d in pub.predictions()]


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
