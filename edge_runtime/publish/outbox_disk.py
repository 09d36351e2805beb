"""The outbox on a disk that will not give or take (docs/durability.md): a garbled file, a read-only directory,
a full disk. Functions of `Outbox` kept here so outbox.py stays about the normal path.

A full disk: SQLite writes every change to its WAL first and can empty the WAL only by copying it into the
database file, which may have to grow. With no byte free nothing could be written again, not even the deletes
that make room. So the WAL is kept small, and a reserve file waits beside the outbox: released when the disk is
full, it lets the WAL drain; re-made when room comes back. From a full disk on, the outbox holds no more bytes
than it had (a cap): new rows take the pages of the oldest, so neither file grows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgernn.errors import PublishError

if TYPE_CHECKING:
    from edge_runtime.publish.outbox import Outbox

log = logging.getLogger("edge_runtime.publish")

RESERVE_BYTES = 2 * 2**20  # the reserve file's default size (OutboxConfig.reserve_bytes)
WAL_PAGES = 256  # checkpoint the WAL into the database every this many pages (1 MiB at 4 KiB pages)


def recover_open(box: Outbox, exc: PublishError) -> None:
    """Opening failed: set a garbled file aside (a new outbox starts), or live in memory on a read-only or full
    disk, each said in one line and counted in `box.disk`; anything else (a lock, a bug) is raised."""
    from edge_runtime.stream.aside import set_aside

    cause = exc.__cause__
    if box.path is None or not isinstance(cause, sqlite3.DatabaseError) or "locked" in str(cause):
        raise exc
    if isinstance(cause, sqlite3.OperationalError):  # the file is fine; the disk will not take it
        if not _unwritable(box.path.parent, cause):
            raise exc
        box.disk["in_memory"] = 1
        log.warning(
            "outbox %s cannot be written (%s): predictions wait in memory, lost if this process stops", box.path, cause
        )
        box.path = None
    else:
        aside = set_aside(box.path, "-wal", "-journal")
        box.disk["unreadable"] = 1
        log.warning(
            "outbox %s is not a readable SQLite database (%s); kept as %s, a new outbox starts",
            box.path,
            cause,
            aside.name if aside is not None else "(could not be moved)",
        )


def make_reserve(box: Outbox) -> None:
    """Create the reserve file when it is missing and the disk has room for it and as much again."""
    box._reserve_checked = time.monotonic()
    size = box.config.reserve_bytes
    if box.path is None or not size:
        box._reserve = None
        return
    box._reserve = box.path.with_name(box.path.name + ".reserve")
    if box._reserve.exists():
        return
    try:
        st = os.statvfs(box.path.parent)
        if st.f_bavail * st.f_frsize < 2 * size:
            return
        fd = os.open(box._reserve, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            else:  # macOS: real blocks, not a sparse file
                for _ in range(0, size, 2**16):
                    os.write(fd, bytes(2**16))
        finally:
            os.close(fd)
    except OSError:
        box._reserve.unlink(missing_ok=True)


def commit_when_full(
    box: Outbox, queue: list[tuple[str, int, str, bytes, float]], seqs: list[tuple[str, int]], keep_upto: int
) -> tuple[list[tuple[str, int, str, bytes, float]], int, int]:
    """The disk is full: keep the newest predictions within what fits. Delete the oldest rows not yet
    handed to the client (their pages are reused), more each try; when none are left, drop the oldest
    queued rows. Everything dropped is counted in `dropped` (and `disk`); seq numbers are never reused.

    Returns (the queued rows written, last id, rows dropped)."""
    box.disk["full"] = box.disk.get("full", 0) + 1
    box._rollback()
    if box._reserve is not None and box._reserve.exists():
        box._reserve.unlink()  # room for the WAL to drain into the database file
        with contextlib.suppress(sqlite3.OperationalError):
            box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box._reserve_checked = time.monotonic()
    if box._cap is None:
        # From now on the outbox holds no more than it does now: new rows take the pages of the oldest,
        # so neither file grows, and the WAL can always be copied back into the database.
        (held,) = box._db.execute("SELECT coalesce(sum(length(topic) + length(payload)), 0) FROM outbox").fetchone()
        box._cap = max(int(held * 0.9), RESERVE_BYTES // 4)
    dropped, on_disk, written, base = 0, 0, True, box._dropped
    not_kept = box.disk.setdefault("not_kept", 0)
    while True:
        box._rollback()
        victims = box._db.execute(
            "SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", (keep_upto, on_disk - 1)
        ).fetchone()
        deleted = 0
        try:
            box._db.execute("BEGIN")
            box._db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", box._acked_ranges)
            upto = victims[0] if victims is not None else box._committed_upto
            if on_disk:
                deleted = box._db.execute("DELETE FROM outbox WHERE id > ? AND id <= ?", (keep_upto, upto)).rowcount
            last_id = box._insert(queue) if queue else 0
            box._save_seqs(seqs)
            box._dropped = base + dropped + deleted
            box._save_dropped()
            box._recount()
            box._enforce_limits(keep_upto)  # down to the cap: counted in `dropped` and `not_kept` there
            box._db.execute("COMMIT")
            break
        except sqlite3.OperationalError as exc:
            if "disk is full" not in str(exc).lower():
                raise
            box._dropped = base
            box.disk["not_kept"] = not_kept
        if on_disk == 0 or victims is not None:
            on_disk = max(64, len(queue), 2 * on_disk)  # not enough room yet: delete more of the oldest
        elif queue:
            cut = (len(queue) + 1) // 2  # nothing left on disk to make room: the oldest queued go
            queue, dropped = queue[cut:], dropped + cut
        else:  # not even the seq numbers fit: count what is lost, save the seqs at a later commit
            box._rollback()
            box._db.execute("BEGIN")
            box._db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", box._acked_ranges)
            try:
                box._db.execute("COMMIT")  # a delete frees pages: it may fit where nothing else does
            except sqlite3.OperationalError:
                box._rollback()  # then the acknowledged rows are sent again after a restart
            box._dropped = base + dropped
            with box._qlock:
                box._dirty_seq.update(st for st, _ in seqs)
                box._mark_dirty()
            deleted, last_id, written = 0, 0, False
            break
    lost = dropped + deleted
    box.disk["not_kept"] += dropped + deleted
    box._recount()
    now = time.monotonic()
    if now - box._full_logged >= 60.0:  # one line a minute at most: a full disk stays full a while
        box._full_logged = now
        log.warning(
            "disk full under outbox %s: %d oldest predictions dropped to keep the newest (counted in dropped)",
            box.path,
            box.disk["not_kept"],
        )
    return (queue if written else []), last_id or box._committed_upto, lost


def _unwritable(directory: Path, exc: sqlite3.OperationalError) -> bool:
    """A read-only or full filesystem (not a bug or a lock): the outbox then lives in memory."""
    text = str(exc).lower()
    return "readonly" in text or "disk is full" in text or not os.access(directory, os.W_OK) or _ro_mount(directory)


def _ro_mount(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False
