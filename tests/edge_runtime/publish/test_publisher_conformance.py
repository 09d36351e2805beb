"""One conformance suite for `Publisher`, run on each link: the in-memory fake (`MemoryPublisher`) and paho
against a real Mosquitto. What a user of a publisher relies on is asserted the same way on both, so the fake
that other tests and the simulator use cannot drift from the real thing (httpx's MockTransport idea).

Counted as a subscriber sees it: the fake's delivered messages, or an independent `mosquitto_sub` (a
persistent QoS 1 session) and the broker's retained messages. Link-specific behaviour stays beside the link:
test_memory_publisher.py (the fake's own controls), test_delivery.py (volume, broker SIGKILLs, ACL refusals,
the last will of a killed process), test_refused_rows.py (a row paho refuses).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.publish import MemoryPublisher, OutboxConfig, Publisher, open_publisher
from edge_runtime.publish.base import OutboxPublisher
from edgernn.errors import ConfigError, PublishError
from tests.edge_runtime.publish.helpers import FAST, first_arrival_order, manifest, pred, wait_until


class MemoryLink:
    """The fake: the "broker" is each publisher's message list and retained dict."""

    name = "memory"

    def __init__(self) -> None:
        self.pubs: list[MemoryPublisher] = []
        self.up = True

    def open(self, device: str = "dev1", **kw: Any) -> Publisher:
        pub = open_publisher(None, device, **kw)
        assert isinstance(pub, MemoryPublisher)
        pub.online = self.up
        self.pubs.append(pub)
        return pub

    def delivered(self, n: int, timeout: float) -> list[tuple[str, int]]:
        """(stream, seq) of every delivered prediction, in arrival order."""
        return [(d["stream"], d["seq"]) for p in self.pubs for d in p.predictions()]

    def topics(self) -> list[str]:
        return [m.topic for p in self.pubs for m in p.messages]

    def retained(self, pattern: str) -> dict[str, Any]:
        """topic -> JSON of the retained messages under `pattern` (a prefix before `#`, or one topic)."""
        out: dict[str, Any] = {}
        for p in self.pubs:  # later publishers' messages are the broker's later state
            for topic in {m.topic for m in p.messages if _matches(pattern, m.topic)}:
                out.pop(topic, None)
            out.update({t: json.loads(v) for t, v in p.retained.items() if _matches(pattern, t)})
        return out

    def down(self) -> None:
        self.up = False
        for p in self.pubs:
            p.online = False

    def restore(self) -> None:
        self.up = True
        for p in self.pubs:
            p.online = True

    def send(self, topic: str, payload: str) -> None:
        for p in self.pubs:
            p.receive(topic, payload)


class PahoLink:
    """paho against a real Mosquitto, observed by an independent subscriber to everything."""

    name = "paho"

    def __init__(self, broker: Any, sub: Any) -> None:
        self.broker, self.sub = broker, sub
        self.pubs: list[OutboxPublisher] = []

    def open(self, device: str = "dev1", **kw: Any) -> Publisher:
        pub = open_publisher(self.broker.url, device, config=FAST, **kw)
        assert isinstance(pub, OutboxPublisher)
        self.pubs.append(pub)
        return pub

    def delivered(self, n: int, timeout: float) -> list[tuple[str, int]]:
        return self.sub.wait_for(n, timeout)

    def topics(self) -> list[str]:
        return [line.partition(" ")[0] for line in self.sub.lines()]

    def retained(self, pattern: str) -> dict[str, Any]:
        out = subprocess.run(
            ["mosquitto_sub", "-p", str(self.broker.port), "-t", pattern, "-v", "-W", "1", "--retained-only"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        msgs = {}
        for line in out.stdout.splitlines():
            topic, _, payload = line.partition(" ")
            msgs[topic] = json.loads(payload) if payload else {}
        return msgs

    def down(self) -> None:
        self.broker.kill()
        assert wait_until(lambda: not any(p.connected for p in self.pubs), 10)

    def restore(self) -> None:
        self.broker.start()
        assert wait_until(lambda: all(p.connected for p in self.pubs if not p._closed), 15)

    def send(self, topic: str, payload: str) -> None:
        cmd = ["mosquitto_pub", "-p", str(self.broker.port), "-q", "1", "-t", topic, "-m", payload]
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


Link = MemoryLink | PahoLink


def _matches(pattern: str, topic: str) -> bool:
    return topic.startswith(pattern[:-1]) if pattern.endswith("#") else topic == pattern


@pytest.fixture(params=["memory", pytest.param("paho", marks=pytest.mark.broker)])
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    if request.param == "memory":
        made: Link = MemoryLink()
    else:
        broker = request.getfixturevalue("mosquitto")
        made = PahoLink(broker, request.getfixturevalue("mosquitto_sub")(broker, "#", client_id="conformance"))
    yield made
    for pub in made.pubs:
        pub.close(timeout=0.5)


def _status(link: Link, topic: str, **want: Any) -> dict[str, Any]:
    """The retained status, once it shows `want` (the publisher sends it in the background)."""
    got: dict[str, Any] = {}

    def shown() -> bool:
        got.update(link.retained(topic).get(topic, {}))
        return all(got.get(k) == v for k, v in want.items())

    assert wait_until(shown, 10, step=0.1), got
    return got


def test_each_stream_gets_its_own_seq_returned_set_and_delivered(link: Link) -> None:
    pub = link.open("gw1")
    p = pred("s1")
    assert pub.publish(p) == 1 and p.seq == 1
    assert [pub.publish(pred(s)) for s in ("s1", "s2", "s1")] == [2, 1, 3]
    assert pub.flush(10) and pub.depth == 0 and pub.delivered == 4
    got = link.delivered(4, 10)
    assert sorted(set(got)) == [("s1", 1), ("s1", 2), ("s1", 3), ("s2", 1)]
    assert first_arrival_order([g for g in got if g[0] == "s1"]) == [1, 2, 3]
    on = [t for t in link.topics() if t.endswith("/prediction")]
    assert on == ["edgernn/s1/prediction", "edgernn/s1/prediction", "edgernn/s2/prediction", "edgernn/s1/prediction"]
    assert pub.last_seqs() == {"s1": 3, "s2": 1}


def test_status_is_retained_online_with_counters_then_offline_and_a_closed_publisher_refuses(link: Link) -> None:
    pub = link.open("dev1", prefix="site/edgernn")
    pub.status({"readings": 10, "bad": {"nan": 2}})
    status = _status(link, "site/edgernn/dev1/status", state="online", counters={"readings": 10, "bad": {"nan": 2}})
    assert status["outbox"]["depth"] == 0 and status["outbox"]["dropped"] == 0 and status["device"] == "dev1"
    pub.close()
    _status(link, "site/edgernn/dev1/status", state="offline")
    with pytest.raises(PublishError, match="cannot publish: the publisher is closed"):
        pub.publish(pred())


def test_an_outage_fills_the_outbox_then_it_drains_in_order(link: Link) -> None:
    pub = link.open("dev1")
    for i in range(100):
        pub.publish(pred(i=i))
    assert pub.flush(20)
    link.down()
    for i in range(100, 1100):
        pub.publish(pred(i=i))
    assert wait_until(lambda: pub.depth == 1000, 5), pub.depth  # every one waiting: none lost, none sent
    assert not pub.flush(0.3) and pub.depth == 1000  # time ran out: said, and nothing dropped
    link.restore()
    assert pub.flush(60), f"outbox still holds {pub.depth}"
    assert first_arrival_order(link.delivered(1100, 60)) == list(range(1, 1101))
    _status(link, "edgernn/dev1/status", state="online")


def test_a_bounded_outbox_drops_the_oldest_and_the_status_counts_them(link: Link) -> None:
    link.down()  # the device starts while its broker is unreachable: not an error
    pub = link.open("dev1", outbox=OutboxConfig(max_rows=20))
    for i in range(100):
        pub.publish(pred(i=i))
    # the disk outbox counts its drops when its writer commits, a moment after the queue is trimmed: wait for both
    assert wait_until(lambda: pub.depth == 20 and pub.dropped == 80, 5), (pub.depth, pub.dropped)
    link.restore()
    assert pub.flush(30)
    pub.status({"readings": 100})
    assert first_arrival_order(link.delivered(20, 30)) == list(range(81, 101))  # the newest 20, in order
    status = _status(link, "edgernn/dev1/status", counters={"readings": 100})
    assert status["outbox"]["dropped"] == 80 and status["state"] == "online"


def test_seq_continues_across_restarts_and_what_waited_is_sent_first(link: Link, tmp_path: Path) -> None:
    link.down()
    pub = link.open("dev1", state_dir=tmp_path / "state")
    for i in range(50):
        pub.publish(pred(i=i))
    pub.close(timeout=0.5)  # the broker is away: the 50 stay on disk
    link.restore()
    pub = link.open("dev1", state_dir=tmp_path / "state")
    assert pub.publish(pred()) == 51
    for i in range(49):
        pub.publish(pred(i=i))
    assert pub.flush(30)
    assert first_arrival_order(link.delivered(100, 30)) == list(range(1, 101))


def test_publish_many_gives_the_seqs_publish_would_and_refuses_a_bad_name_before_any(link: Link) -> None:
    pub = link.open("gw1")
    preds = [pred("s1"), pred("s2"), pred("s1")]
    assert pub.publish_many(preds) == [1, 1, 2] == [p.seq for p in preds]
    with pytest.raises(ConfigError, match="stream"):
        pub.publish_many([pred("s2"), pred("no/slash")])
    assert pub.publish(pred("s1")) == 3
    assert pub.flush(10) and sorted(set(link.delivered(4, 10))) == [("s1", 1), ("s1", 2), ("s1", 3), ("s2", 1)]


def test_a_fresh_outbox_resumes_after_the_saved_seqs_and_one_with_seqs_keeps_its_own(
    link: Link, tmp_path: Path
) -> None:
    pub = link.open("dev1", state_dir=tmp_path / "a")
    assert pub.resume_seq({"s1": 41, "s2": 0}) == 1  # a stream at 0 had given none
    assert [pub.publish(pred(s)) for s in ("s1", "s2")] == [42, 1]
    pub.close()
    pub = link.open("dev1", state_dir=tmp_path / "a")
    assert pub.resume_seq({"s1": 5}, margin=100) == 0 and pub.publish(pred("s1")) == 43  # its own seqs win
    pub.close()
    pub = link.open("dev1", state_dir=tmp_path / "b")  # lost after an unclean stop: skip ahead, never repeat
    assert pub.resume_seq({"s1": 10}, margin=100) == 1 and pub.publish(pred("s1")) == 111
    pub.status({})
    assert _status(link, "edgernn/dev1/status", state="online")["outbox"]["seq_resumed"] == (
        "checkpoint + 100 (unclean stop)"
    )
    assert pub.flush(10) and ("s1", 111) in link.delivered(4, 10)


def test_discovery_is_retained_resent_on_home_assistants_birth_and_removable(link: Link, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the bundle manifest"):
        link.open("cellar", discovery=True)
    pub = link.open("cellar", discovery=True, manifest=manifest("anomaly", targets=["temp"]), state_dir=tmp_path)
    pub.publish(pred("cellar"))
    assert pub.flush(10)
    expected = {
        "homeassistant/sensor/edgernn_cellar/anomaly_score/config",
        "homeassistant/binary_sensor/edgernn_cellar/anomaly/config",
        "homeassistant/sensor/edgernn_cellar/latency/config",
        "homeassistant/sensor/edgernn_cellar/outbox_depth/config",  # the device itself
    }
    assert wait_until(lambda: set(link.retained("homeassistant/#")) == expected, 10)
    score = link.retained("homeassistant/#")["homeassistant/sensor/edgernn_cellar/anomaly_score/config"]
    assert score["state_topic"] == "edgernn/cellar/state" and score["device"]["name"] == "cellar"
    assert _status(link, "edgernn/cellar/status", state="online")  # what the availability template reads

    def configs() -> int:
        return sum(t.startswith("homeassistant/") and t.endswith("/config") for t in link.topics())

    before = configs()
    link.send("homeassistant/status", "online")
    assert wait_until(lambda: configs() >= before + len(expected), 10), (before, configs())
    pub.remove_discovery()
    pub.close()
    assert wait_until(lambda: link.retained("homeassistant/#") == {}, 10)


def test_a_stream_name_too_long_for_a_topic_never_enters_the_outbox(link: Link, tmp_path: Path) -> None:
    pub = link.open("dev1", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="at most 128"):
        pub.publish(pred("x" * 70_000))
    assert pub.depth == 0 and pub.publish(pred("s1")) == 1


@pytest.mark.parametrize("bad", ["", "a/b", "dev+", "#", " dev"])
def test_bad_device_names_are_refused(link: Link, bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid device"):
        link.open(bad)
