"""The SQLite outbox on its own: seq numbers, grouped commits, bounds, crashes, one owner (the bounds it shares
with the outbox in RAM are tested on both in test_memory_outbox.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from edge_runtime.publish.outbox import Outbox, OutboxConfig
from edgernn.errors import ConfigError, PublishError


def _add(box: Outbox, stream: str = "dev1", n: int = 1, size: int = 10) -> list[int]:
    return [box.append(stream, f"edgernn/{stream}/prediction", lambda seq: b"x" * size) for _ in range(n)]


def test_seq_per_stream_continues_after_reopen(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    assert _add(box, "a", 3) == [1, 2, 3]
    assert _add(box, "b", 2) == [1, 2]
    box.close()
    box = Outbox(tmp_path / "outbox.sqlite")
    assert _add(box, "a", 2) == [4, 5]
    assert box.depth == 7 and box.streams == ["a", "b"]
    box.close()


def test_only_committed_rows_are_pending_and_acks_remove_them(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite", OutboxConfig(group_rows=100, group_interval=10.0))
    _add(box, n=5)
    assert box.pending(0, 100) == []  # nothing reaches the client before it is on disk
    due = box.commit_due()
    assert box.uncommitted == 5 and due is not None and due > 0
    box.commit()
    rows = box.pending(0, 100)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert box.ack(rows[:2]) == 2 and box.depth == 3
    box.commit()
    box.close()
    box = Outbox(tmp_path / "outbox.sqlite")
    assert [r.seq for r in box.pending(0, 100)] == [3, 4, 5]  # unacknowledged rows survive, in order
    box.close()


def test_a_full_group_is_due_at_once(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(group_rows=4, group_interval=60.0))
    _add(box, n=3)
    due = box.commit_due()
    assert due is not None and due > 1.0
    _add(box, n=1)
    assert box.commit_due() == 0.0
    box.close()


def test_row_bound_drops_oldest_unsent_and_counts_them_persistently(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_rows=10))
    _add(box, n=25)
    box.commit(keep_upto=0)
    assert box.depth == 10 and box.dropped == 15
    assert [r.seq for r in box.pending(0, 100)] == list(range(16, 26))
    box.close()
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_rows=10))
    assert box.dropped == 15  # published on the status topic after a restart too
    box.close()


def test_age_bound(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_age_s=0.2))
    _add(box, n=5)
    box.commit()
    time.sleep(0.3)
    _add(box, n=2)
    box.commit()
    assert [r.seq for r in box.pending(0, 100)] == [6, 7] and box.dropped == 5
    time.sleep(1.1)  # nothing new: the periodic age check still makes a commit due
    assert box.commit_due() == 0.0
    box.commit()
    assert box.depth == 0 and box.dropped == 7
    box.close()


def test_second_owner_is_refused(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    _add(box)
    box.commit()
    with pytest.raises(PublishError, match="in use by another publisher"):
        Outbox(tmp_path / "o.sqlite")
    box.close()
    Outbox(tmp_path / "o.sqlite").close()  # free again once closed


def test_bad_bounds_name_the_value():
    with pytest.raises(ConfigError, match="max_rows=0"):
        OutboxConfig(max_rows=0)
    with pytest.raises(ConfigError, match="synchronous='fast'; allowed: full, normal, off"):
        OutboxConfig(synchronous="fast")


def test_not_a_database_is_set_aside_with_a_clear_line(tmp_path, caplog):
    """Issue 14 item 9: a garbled outbox no longer stops the device; it is kept aside and a new one starts."""
    (tmp_path / "o.sqlite").write_bytes(b"not sqlite at all" * 100)
    box = Outbox(tmp_path / "o.sqlite")
    assert box.disk == {"unreadable": 1} and box.depth == 0
    assert "not a readable SQLite database" in caplog.text
    assert [p.read_bytes()[:17] for p in tmp_path.glob("o.sqlite.bad-*")] == [b"not sqlite at all"]
    box.close()


def test_sigkill_mid_stream_keeps_committed_rows_and_seq_without_gaps(tmp_path):
    """A process killed while appending: after restart every committed row is there, seq follows the last
    committed one, and the seq column has no hole (what was never committed was never sent either)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from edge_runtime.publish.outbox import Outbox, OutboxConfig
        box = Outbox({str(tmp_path / "o.sqlite")!r}, OutboxConfig(group_rows=64, group_interval=0.005))
        i = 0
        while True:
            box.append("dev1", "edgernn/dev1/prediction", lambda seq: b"p%d" % seq)
            i += 1
            if box.commit_due() is not None and box.commit_due() <= 0:
                box.commit()
                print(box.last_seq("dev1"), flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = 0
    deadline = time.monotonic() + 20
    while committed < 3000 and time.monotonic() < deadline:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        committed = int(line) if line.strip() else committed
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert committed >= 3000, "the writer did not get going"
    db = sqlite3.connect(tmp_path / "o.sqlite")
    seqs = [s for (s,) in db.execute("SELECT seq FROM outbox ORDER BY id")]
    last = db.execute("SELECT last FROM seq WHERE stream = 'dev1'").fetchone()[0]
    db.close()
    assert seqs == list(range(1, len(seqs) + 1)), "a hole or a reordering in the committed rows"
    assert len(seqs) >= committed and last == len(seqs)
    box = Outbox(tmp_path / "o.sqlite")
    assert _add(box) == [last + 1]
    box.close()


def test_sync_puts_everything_published_on_disk_before_a_crash(tmp_path):
    """`sync()` before a state checkpoint: a crash right after it keeps every prediction made before it."""
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        from edge_runtime.publish import MemoryPublisher, OutboxConfig
        from tests.edge_runtime.publish.helpers import pred
        pub = MemoryPublisher("dev1", state_dir={str(tmp_path)!r}, outbox=OutboxConfig(group_interval=60.0))
        pub.online = False
        for i in range(300):
            pub.publish(pred("dev1", i))
        pub.sync()
        for i in range(50):
            pub.publish(pred("dev1", i))  # after the sync: not on disk yet
        os._exit(9)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    box = Outbox(tmp_path / "outbox.sqlite")
    assert [r.seq for r in box.pending(0, 1000)] == list(range(1, 301))
    assert _add(box) == [301]
    box.close()


def test_rows_handed_over_from_memory_are_the_rows_on_disk(tmp_path):
    """Fresh groups are handed over from memory (no SELECT); what the client gets equals the table."""
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_rows=1000))
    got: list = []
    cursor = 0
    previous: list = []
    for _ in range(5):
        _add(box, "a", 120)
        _add(box, "b", 30)
        box.commit()
        box.ack(previous)  # acknowledgements lag one group behind
        previous = []
        while rows := box.pending(cursor, 64):
            previous += rows
            cursor = rows[-1].id
        got += previous
    _add(box, "a", 2000)  # 600 acknowledged, 150 in flight, 2000 new: 1150 over the bound of 1000
    box.commit(keep_upto=cursor)
    assert box.dropped == 1150 and box.depth == 1000
    while rows := box.pending(cursor, 500):
        got += rows
        cursor = rows[-1].id
    assert [r.seq for r in got if r.stream == "a"] == list(range(1, 601)) + list(range(1751, 2601))
    box.close()
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_rows=1000))
    assert box.pending(0, 10_000) == got[600:]  # the in-flight group and the newest 850, byte for byte
    box.close()


def test_an_acknowledgement_alone_waits_for_the_next_group_or_ack_interval(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(group_interval=0.02, ack_interval=1.0))
    _add(box, n=3)
    box.commit()
    box.ack(box.pending(0, 2))  # seq 1, 2 acknowledged
    due = box.commit_due()
    assert due is not None and 0.9 < due <= 1.0  # no commit (no fsync) of its own for a while
    assert box.depth == 1
    box._db.close()  # the device dies before that commit: the acknowledged rows come back, to be re-sent
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(group_interval=0.02, ack_interval=1.0))
    assert [r.seq for r in box.pending(0, 10)] == [1, 2, 3]
    box.ack(box.pending(0, 2))
    _add(box, n=1)  # the next group carries the deletions with it
    due = box.commit_due()
    assert due is not None and due <= 0.02
    box.commit()
    box.close()
    box = Outbox(tmp_path / "o.sqlite")
    assert [r.seq for r in box.pending(0, 10)] == [3, 4]
    box.close()
