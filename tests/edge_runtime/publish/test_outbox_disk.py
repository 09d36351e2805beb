"""The outbox on a disk that will not give or take: a garbled file, a read-only directory, a full disk.

Each is said in one line and counted (`Outbox.disk`, published in the status payload's outbox figures);
the device keeps publishing. Full and read-only disks are a real tmpfs (tests/fixtures/smalldisk.py)."""

from __future__ import annotations

import logging

from edge_runtime.publish.outbox import Outbox, OutboxConfig


def _fill(box: Outbox, n: int, start: int = 0, size: int = 150) -> None:
    for i in range(start, start + n):
        box.append("dev1", "edgernn/dev1/prediction", lambda seq: b'{"seq":%d,"pad":"%s"}' % (seq, b"x" * size))
        if i % 100 == 99:
            box.commit()
    box.commit()


def _seqs(box: Outbox) -> list[int]:
    return [r.seq for r in box.pending(0, 10**6)]


def test_a_garbled_outbox_is_set_aside_and_a_new_one_continues_seq_from_nowhere(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    _fill(box, 500)
    box.close()
    data = bytearray(path.read_bytes())
    data[4096 : 4096 * 3] = b"\xa5" * 8192  # pages 2-3: the table's b-tree
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = Outbox(path)
    assert again.disk == {"unreadable": 1} and again.fresh and again.depth == 0
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("outbox.sqlite.bad-")]
    assert len(aside) == 1, list(tmp_path.iterdir())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and aside[0] in lines[0] and "\n" not in lines[0], lines
    _fill(again, 3)
    assert _seqs(again) == [1, 2, 3]
    again.close()


def test_a_read_only_directory_gives_an_outbox_in_memory(small_disk, caplog):
    d = small_disk(1024 * 1024)
    box = Outbox(d / "outbox.sqlite")
    _fill(box, 10)
    box.close()
    small_disk.read_only(d)
    with caplog.at_level(logging.WARNING):
        ro = Outbox(d / "outbox.sqlite")
    assert ro.disk == {"in_memory": 1} and ro.path is None
    assert len(caplog.records) == 1 and "cannot be written" in caplog.records[0].getMessage()
    _fill(ro, 5)
    assert ro.depth == 5
    ro.close()


def test_a_full_disk_keeps_the_newest_predictions_and_counts_the_rest(small_disk, caplog):
    d = small_disk(8 * 2**20)  # a real tmpfs
    box = Outbox(d / "outbox.sqlite", OutboxConfig(group_rows=100))
    _fill(box, 3000)  # the broker is away: nothing is acknowledged
    small_disk.fill(d)  # then something else takes every free byte
    n = 23_000
    with caplog.at_level(logging.WARNING):
        _fill(box, n - 3000, start=3000)
    seqs = _seqs(box)
    assert box.disk["full"] >= 1 and box.disk["not_kept"] == box.dropped > 0
    assert seqs[-1] == n and seqs == list(range(n - len(seqs) + 1, n + 1))  # the newest, without a hole
    assert box.dropped + box.depth == n and len(seqs) > 3000, (box.dropped, box.depth)
    assert len(caplog.records) == 1 and "disk full" in caplog.records[0].getMessage()
    box.close()
    again = Outbox(d / "outbox.sqlite")  # what was kept survives, and so do the counts
    assert again.depth == len(seqs) and again.dropped == n - len(seqs) and again.last_seq("dev1") == n
    again.close()
