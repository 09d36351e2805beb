"""StdoutPublisher: `edgernn run` without --mqtt prints each prediction with the seq the publisher gives."""

from __future__ import annotations

import io
import json

import pytest

from edge_runtime.publish.stdout import StdoutPublisher
from edgernn.errors import ConfigError, PublishError
from tests.edge_runtime.publish.helpers import pred


def test_each_line_carries_the_publishers_seq_per_stream() -> None:
    out = io.StringIO()
    pub = StdoutPublisher("gw1", out)
    p = pred("s1")
    assert pub.publish(p) == 1 and p.seq == 1
    assert pub.publish_many([pred("s2"), pred("s1")]) == [1, 2]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["stream"], d["seq"]) for d in lines] == [("s1", 1), ("s2", 1), ("s1", 2)]
    assert lines[0]["label"] == "walk" and pub.delivered == 3 and pub.depth == 0 and pub.flush()
    assert pub.last_seqs() == {"s1": 2, "s2": 1}


def test_quiet_prints_nothing_and_still_counts_and_resumes() -> None:
    pub = StdoutPublisher("dev1", None)
    assert pub.resume_seq({"dev1": 7}, margin=3) == 1
    assert [pub.publish(pred()) for _ in range(2)] == [11, 12]
    assert pub.resume_seq({"dev1": 100}) == 0  # seqs given already: its own win
    pub.close()
    with pytest.raises(PublishError, match="cannot publish: the publisher is closed"):
        pub.publish(pred())


def test_a_bad_stream_name_is_refused_before_a_line_is_written() -> None:
    out = io.StringIO()
    pub = StdoutPublisher("dev1", out)
    with pytest.raises(ConfigError, match="stream"):
        pub.publish_many([pred("ok"), pred("no/slash")])
    assert out.getvalue() == "" and pub.last_seqs() == {}
