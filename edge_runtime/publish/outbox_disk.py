"""The outbox on a disk that will not give or take (docs/durability.md): a garbled file, a read-only directory,
a full disk. Its own state (`DiskState`), which the outbox holds and reads, so outbox.py stays about the
normal path.

A full disk: SQLite writes every change to its WAL first and can empty the WAL only by copying it into the
database file, which may have to grow. With no byte free nothing could be written again, not even the deletes
that make room. So the WAL is kept small, and a reserve file waits beside the outbox: released when the disk is
full, it lets the WAL drain; re-made when room comes back. From a full disk on, the outbox holds no more bytes
than it had (a cap): new rows take the pages of the oldest, so neither file grows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgernn.errors import PublishError

log = logging.getLogger("edge_runtime.publish")

RESERVE_BYTES = 2 * 2**20  # the reserve file's default size (OutboxConfig.reserve_bytes)
WAL_PAGES = 256  # checkpoint the WAL into the database every this many pages (1 MiB at 4 KiB pages)

# A queued row: (stream, seq, topic, payload, created)
Queued = tuple[str, int, str, bytes, float]


def rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # SQLite may have rolled back by itself on SQLITE_FULL
        db.execute("ROLLBACK")


@dataclass
class DiskState:
    """What the disk would not give or take, for one outbox file, and what the outbox does about it.

    `counts` ("unreadable", "in_memory", "full", "not_kept") is published with the status; `cap`, once the disk
    was full, bounds the bytes the outbox may hold so its files grow no more; `path` becomes None when the
    outbox had to live in memory. The outbox reads these; the functions here are the only writers, except
    `not_kept`, which the outbox's bounds add to while a cap holds.
    """

    path: Path | None
    reserve_bytes: int
    counts: dict[str, int] = field(default_factory=dict)
    cap: int | None = None
    reserve: Path | None = None  # the file set aside for a full disk
    reserve_checked: float = field(default_factory=time.monotonic)
    full_logged: float = -math.inf

    def recover_open(self, exc: PublishError) -> None:
        """Opening failed: set a garbled file aside (a new outbox starts), or live in memory on a read-only or
        full disk, each said in one line and counted; anything else (a lock, a bug) is raised."""
        from edge_runtime.stream.aside import set_aside

        cause = exc.__cause__
        if self.path is None or not isinstance(cause, sqlite3.DatabaseError) or "locked" in str(cause):
            raise exc
        if isinstance(cause, sqlite3.OperationalError):  # the file is fine; the disk will not take it
            if not _unwritable(self.path.parent, cause):
                raise exc
            self.counts["in_memory"] = 1
            log.warning(
                "outbox %s cannot be written (%s): predictions wait in memory, lost if this process stops",
                self.path,
                cause,
            )
            self.path = None
        else:
            aside = set_aside(self.path, "-wal", "-journal")
            self.counts["unreadable"] = 1
            log.warning(
                "outbox %s is not a readable SQLite database (%s); kept as %s, a new outbox starts",
                self.path,
                cause,
                aside.name if aside is not None else "(could not be moved)",
            )

    def make_reserve(self) -> None:
        """Create the reserve file when it is missing and the disk has room for it and as much again."""
        self.reserve_checked = time.monotonic()
        size = self.reserve_bytes
        if self.path is None or not size:
            self.reserve = None
            return
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        if self.reserve.exists():
            return
        try:
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < 2 * size:
                return
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, size)
                else:  # macOS: real blocks, not a sparse file
                    for _ in range(0, size, 2**16):
                        os.write(fd, bytes(2**16))
            finally:
                os.close(fd)
        except OSError:
            self.reserve.unlink(missing_ok=True)

    def room_back(self) -> None:
        """After a full disk, every few seconds: re-make the reserve; when it exists again, lift the cap."""
        if self.cap is not None and time.monotonic() - self.reserve_checked > 5.0:
            self.make_reserve()  # be ready for the next time, and grow again
            if self.reserve is not None and self.reserve.exists():
                self.cap = None

    def commit_when_full(
        self,
        db: sqlite3.Connection,
        queue: list[Queued],
        keep_upto: int,
        committed_upto: int,
        write: Callable[[list[Queued], int, int], tuple[int, int]],
        give_up: Callable[[int], None],
    ) -> tuple[list[Queued], int, int]:
        """The disk is full: keep the newest predictions within what fits. Delete the oldest rows not yet
        handed to the client (their pages are reused), more each try; when none are left, drop the oldest
        queued rows. seq numbers are never reused.

        The outbox's own writes are its callbacks: `write(queue, delete_upto, dropped)` writes the group in one
        transaction (acknowledged rows deleted, rows with id in (keep_upto, delete_upto] deleted, `queue`
        inserted, seqs and `dropped` saved) and returns (last id, rows deleted), raising
        sqlite3.OperationalError with its own figures restored when the disk refuses; `give_up(dropped)` keeps
        what it can when not even the seq numbers fit. Returns (the queued rows written, last id, rows lost)."""
        self.counts["full"] = self.counts.get("full", 0) + 1
        rollback(db)
        if self.reserve is not None and self.reserve.exists():
            self.reserve.unlink()  # room for the WAL to drain into the database file
            with contextlib.suppress(sqlite3.OperationalError):
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.reserve_checked = time.monotonic()
        if self.cap is None:
            # From now on the outbox holds no more than it does now: new rows take the pages of the oldest,
            # so neither file grows, and the WAL can always be copied back into the database.
            (held,) = db.execute("SELECT coalesce(sum(length(topic) + length(payload)), 0) FROM outbox").fetchone()
            self.cap = max(int(held * 0.9), RESERVE_BYTES // 4)
        dropped, on_disk, written = 0, 0, True
        not_kept = self.counts.setdefault("not_kept", 0)
        while True:
            rollback(db)
            victims = db.execute(
                "SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", (keep_upto, on_disk - 1)
            ).fetchone()
            upto = (victims[0] if victims is not None else committed_upto) if on_disk else keep_upto
            try:
                last_id, deleted = write(queue, upto, dropped)
                break
            except sqlite3.OperationalError as exc:
                if "disk is full" not in str(exc).lower():
                    raise
                self.counts["not_kept"] = not_kept
            if on_disk == 0 or victims is not None:
                on_disk = max(64, len(queue), 2 * on_disk)  # not enough room yet: delete more of the oldest
            elif queue:
                cut = (len(queue) + 1) // 2  # nothing left on disk to make room: the oldest queued go
                queue, dropped = queue[cut:], dropped + cut
            else:  # not even the seq numbers fit: count what is lost, save the seqs at a later commit
                give_up(dropped)
                deleted, last_id, written = 0, 0, False
                break
        lost = dropped + deleted
        self.counts["not_kept"] += lost
        now = time.monotonic()
        if now - self.full_logged >= 60.0:  # one line a minute at most: a full disk stays full a while
            self.full_logged = now
            log.warning(
                "disk full under outbox %s: %d oldest predictions dropped to keep the newest (counted in dropped)",
                self.path,
                self.counts["not_kept"],
            )
        return (queue if written else []), last_id or committed_upto, lost


def _unwritable(directory: Path, exc: sqlite3.OperationalError) -> bool:
    """A read-only or full filesystem (not a bug or a lock): the outbox then lives in memory."""
    text = str(exc).lower()
    return "readonly" in text or "disk is full" in text or not os.access(directory, os.W_OK) or _ro_mount(directory)


def _ro_mount(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False
