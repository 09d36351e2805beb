"""The outbox in RAM behaves as the SQLite one: seq per stream, order, bounds, drops counted; it lives on
across publishers that share it (a simulated device's reboots)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_runtime.publish import MemoryPublisher
from edge_runtime.publish.memory_outbox import MemoryOutbox
from edge_runtime.publish.outbox import Outbox, OutboxConfig
from edge_runtime.stream.prediction import Prediction
from edgernn.errors import ConfigError

Box = Outbox | MemoryOutbox


@pytest.fixture(params=["sqlite", "memory"])
def make_box(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Box]:
    def make(config: OutboxConfig | None = None) -> Box:
        return Outbox(tmp_path / "o.sqlite", config) if request.param == "sqlite" else MemoryOutbox(config)

    return make


def _add(box: Box, stream: str = "dev1", n: int = 1, size: int = 10) -> list[int]:
    return [box.append(stream, f"edgernn/{stream}/prediction", lambda seq: b"x" * size) for _ in range(n)]


def test_seq_per_stream_and_order(make_box: Callable[..., Box]) -> None:
    box = make_box()
    assert _add(box, "a", 3) == [1, 2, 3] and _add(box, "b", 2) == [1, 2] and _add(box, "a") == [4]
    box.commit()
    rows = box.pending(0, 100)
    assert [(r.stream, r.seq) for r in rows] == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("a", 4)]
    assert box.ack([rows[1], rows[0]]) == 2 and box.depth == 4  # acknowledged in any order
    assert [r.seq for r in box.pending(rows[3].id, 100)] == [2, 4]
    assert box.streams == ["a", "b"] and box.last_seq("a") == 4
    box.close()


def test_row_bound_drops_oldest_and_counts(make_box: Callable[..., Box]) -> None:
    box = make_box(OutboxConfig(max_rows=10))
    _add(box, n=25)
    box.commit(keep_upto=0)
    assert box.depth == 10 and box.dropped == 15
    assert [r.seq for r in box.pending(0, 100)] == list(range(16, 26))
    box.close()


def test_rows_handed_to_the_client_are_spared(make_box: Callable[..., Box]) -> None:
    box = make_box(OutboxConfig(max_rows=10))
    _add(box, n=5)
    box.commit()
    handed = box.pending(0, 3)
    _add(box, n=20)
    box.commit(keep_upto=handed[-1].id)
    seqs = [r.seq for r in box.pending(0, 100)]
    assert seqs[:3] == [1, 2, 3] and len(seqs) == 10 and seqs[-1] == 25 and box.dropped == 15
    box.close()


def test_byte_bound(make_box: Callable[..., Box]) -> None:
    box = make_box(OutboxConfig(max_bytes=4096))
    _add(box, n=100, size=100)
    box.commit()
    assert box.bytes <= 4096 and box.depth == 4096 // (100 + len("edgernn/dev1/prediction"))
    assert box.dropped == 100 - box.depth
    box.close()


def test_age_bound(make_box: Callable[..., Box]) -> None:
    box = make_box(OutboxConfig(max_age_s=0.2))
    _add(box, n=5)
    box.commit()
    time.sleep(0.3)
    _add(box, n=2)
    box.commit()
    assert [r.seq for r in box.pending(0, 100)] == [6, 7] and box.dropped == 5
    box.close()


def test_broker_rejections_are_counted(make_box: Callable[..., Box]) -> None:
    box = make_box()
    box.count_dropped(3)
    box.commit()
    assert box.dropped == 3
    box.close()


def _pred(t: float) -> Prediction:
    return Prediction(seq=0, time=t, stream="dev1", values=[0.5, 0.5], label="a", probability=0.5)


def test_a_store_outlives_its_publisher_like_a_devices_flash() -> None:
    store = MemoryOutbox(OutboxConfig(max_rows=50))
    pub = MemoryPublisher("dev1", store=store)
    assert [pub.publish(_pred(t)) for t in range(3)] == [1, 2, 3]
    pub.online = False
    for t in range(3, 80):
        pub.publish(_pred(t))
    pub.close()  # power cut while the broker is away: 77 waiting, bounded to 50
    assert store.depth == 50 and store.dropped == 27
    again = MemoryPublisher("dev1", store=store)  # the reboot reopens the same outbox
    assert again.publish(_pred(80)) == 81  # seq goes on; the waiting rows are delivered first, in order
    seqs = [p["seq"] for p in again.predictions()]
    assert seqs == list(range(31, 82)) and again.depth == 0
    again.close()


def test_a_store_and_a_state_dir_are_refused_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        MemoryPublisher("dev1", store=MemoryOutbox(), state_dir=tmp_path)


def test_a_fresh_box_resumes_after_saved_seqs_and_a_used_one_keeps_its_own(make_box: Callable[..., Box]) -> None:
    box = make_box()
    assert box.resume_seq({"a": 41, "b": 0}, margin=10) == 1  # b had given none: stays at 0
    assert _add(box, "a") == [52] and _add(box, "b") == [1] and box.last_seqs() == {"a": 52, "b": 1}
    assert box.resume_seq({"a": 500}) == 0 and _add(box, "a") == [53]
    box.close()
