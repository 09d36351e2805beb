"""The durable outbox: every prediction is committed to SQLite (WAL) before it is handed to the MQTT client,
and its row is deleted only when the broker has acknowledged it (QoS 1 PUBACK).

One file per publisher, `<state_dir>/outbox.sqlite`, held with an exclusive lock (a second process gets a
clear error instead of sending the same rows twice). Tables:

    outbox(id, stream, seq, topic, payload, created)   unacknowledged messages, id = send order
    seq(stream, last)                                  last sequence number given out, per stream
    meta(key, value)                                   cumulative counters: dropped

Sequence numbers are written in the same transaction as their rows, so after a crash the next seq follows
the last committed row: subscribers see no gap for a prediction that was never committed (it was never sent
either) and no seq twice with different contents.

Commits are grouped (`OutboxConfig.group_rows` / `group_interval`): one fsync per group instead of one per
prediction (a commit per message measured 3.6k msg/s; grouped, well over 100k rows/s). Rows are handed to
the client only once committed (`pending` returns committed rows only).

Bounded by rows, bytes and age. Past a bound the oldest rows not yet handed to the client are deleted and
counted in `dropped`, which is persisted and published on the status topic: never a silent loss.

A disk that will not give or take (docs/durability.md), counted in `disk` and published with the status:
a garbled file is set aside (renamed `.bad-TIME`) and a new outbox starts; a read-only directory gives an
outbox in memory; a full disk keeps the newest rows within what fits (a reserve file makes room to drain the
WAL, then the outbox holds no more bytes than it had: new rows take the oldest rows' pages).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from edge_runtime.publish.outbox_disk import RESERVE_BYTES, WAL_PAGES, DiskState, Queued, rollback
from edgernn.errors import ConfigError, PublishError

OUTBOX_FILE = "outbox.sqlite"
SCHEMA_VERSION = 1
SYNC_MODES = ("full", "normal", "off")
AGE_CHECK_S = 1.0  # how often rows are checked against max_age_s when nothing else happens
HOT_ROWS = 20_000  # rows kept in memory for handing over; beyond, they are read back from the table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so send order is id order
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seq (stream TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxConfig:
    """Bounds and commit grouping of the outbox. Defaults suit a Raspberry Pi with an SD card."""

    max_rows: int = 100_000
    max_bytes: int = 64 * 2**20
    max_age_s: float | None = 7 * 24 * 3600.0  # None: no age bound
    synchronous: str = "full"  # full: survives power loss; normal: survives a process crash only
    group_rows: int = 512  # commit at once when this many rows wait
    group_interval: float = 0.02  # else commit this long after the first uncommitted row, seconds
    # Acknowledged rows are deleted at once but made durable with the next group, or within this many seconds:
    # an acknowledgement alone costs no commit (no fsync) of its own, which halves the writes of a device
    # publishing a few readings a second. A crash in between re-sends them; subscribers drop repeats by seq.
    ack_interval: float = 1.0
    # Bytes set aside beside the outbox file for a full disk (see RESERVE_BYTES); 0: none (a simulated
    # fleet of a thousand outboxes on one laptop disk)
    reserve_bytes: int = RESERVE_BYTES

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1024:
            raise ConfigError(
                f"outbox bounds max_rows={self.max_rows}, max_bytes={self.max_bytes}; allowed: >= 1 row, >= 1024 bytes"
            )
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ConfigError(f"outbox max_age_s={self.max_age_s}; allowed: > 0 or None")
        if self.synchronous not in SYNC_MODES:
            raise ConfigError(f"outbox synchronous={self.synchronous!r}; allowed: {', '.join(SYNC_MODES)}")
        if self.reserve_bytes < 0:
            raise ConfigError(f"outbox reserve_bytes={self.reserve_bytes}; allowed: >= 0 (0: no reserve)")
        if self.ack_interval < 0:
            raise ConfigError(f"outbox ack_interval={self.ack_interval}; allowed: >= 0 seconds")
        if self.group_rows < 1 or self.group_interval < 0:
            raise ConfigError(
                f"outbox group_rows={self.group_rows}, group_interval={self.group_interval}; need >= 1, >= 0"
            )


class Row(NamedTuple):  # a tuple: made for every prediction, three times cheaper than a frozen dataclass
    id: int
    stream: str
    seq: int
    topic: str
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.payload)


class Outbox:
    """Thread-safe; `path=None` keeps it in memory (no durability across restarts, same behaviour otherwise)."""

    def __init__(self, path: str | Path | None, config: OutboxConfig | None = None) -> None:
        self.config = config or OutboxConfig()
        self._lock = threading.RLock()  # the SQLite connection
        # What the disk would not give or take (docs/durability.md): a garbled file set aside, a read-only
        # directory (the outbox lives in memory), a full disk (a cap on the bytes held); outbox_disk.py.
        self._disk = DiskState(None if path is None else Path(path), self.config.reserve_bytes)
        self.fresh = False  # no seq numbers came from disk: this outbox file was created (or replaced) now
        self._open()
        # Appended rows wait here until the next commit writes them: the caller never waits on SQLite
        # (an fsync takes milliseconds), and the worker writes a whole group with one executemany.
        self._queue: list[Queued] = []  # (stream, seq, topic, payload, created)
        self._qlock = threading.Lock()  # the queue, seq numbers and counters; held for microseconds
        self._plock = threading.Lock()  # producers
        self._dirty_seq: set[str] = set()
        self._acked_ranges: list[tuple[int, int]] = []  # id ranges deleted in the open transaction
        self._dirty_since: float | None = None  # monotonic time of the first change since the last commit
        self._acked_since: float | None = None  # ... of the first acknowledgement since the last commit
        self._age_checked = time.monotonic()
        # Rows of recent groups, so handing them to the client needs no SELECT; every committed row with
        # id > _hot_after is either here or already handed over.
        self._hot: deque[Row] = deque()
        self._hot_after = self._committed_upto
        self._chunk = max(1, min(500, db_variable_limit(self._db) // 5))
        self._db.execute("BEGIN")

    def _open(self) -> None:
        """Connect and read the figures back; a garbled file is set aside and a read-only directory gives an
        outbox in memory, each said in one line: the device goes on predicting either way."""
        try:
            self._load()
        except PublishError as exc:
            self._disk.recover_open(exc)  # a garbled file set aside, or a read-only disk: an outbox in memory
            self._load()

    def _load(self) -> None:
        self._db = self._connect()
        try:
            self._seq: dict[str, int] = dict(self._db.execute("SELECT stream, last FROM seq").fetchall())
            rows, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM outbox"
            ).fetchone()
            self._rows, self._bytes = int(rows), int(size)
            self._committed_upto = int(self._db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])
            self._dropped = self._meta("dropped")
        except sqlite3.DatabaseError as exc:  # a garbled page found while reading it back
            self._db.close()
            raise PublishError(f"outbox {self.path} is not a readable SQLite database: {exc}") from exc
        self.fresh = not self._seq
        self.resumed = ""  # how seq numbers continued in a fresh outbox (`resume_seq`), for the status
        self.epoch = self._meta("epoch")
        if not self.epoch:  # ms since the epoch when this outbox file was made: a new one is a new epoch
            self.epoch = int(time.time() * 1000)
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", (self.epoch,))
        self._disk.make_reserve()

    @property
    def path(self) -> Path | None:
        """The outbox file; None when it lives in memory (asked for, or the disk would not take it)."""
        return self._disk.path

    @property
    def disk(self) -> dict[str, int]:
        """What the disk would not give or take: unreadable, in_memory, full, not_kept (published with the status)."""
        return self._disk.counts

    def _connect(self) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are explicit (BEGIN/COMMIT here), so grouping is ours.
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=0.5)
            # EXCLUSIVE: held for the life of the connection, so two publishers never share one outbox;
            # in WAL mode it also keeps the wal-index in heap memory (no -shm file).
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path is not None and mode.lower() != "wal":
                raise PublishError(
                    f"outbox {self.path}: SQLite refused WAL mode (got {mode}); is the filesystem local?"
                )
            db.execute(f"PRAGMA synchronous={self.config.synchronous.upper()}")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={RESERVE_BYTES // 2}")  # the WAL shrinks back after a burst
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise PublishError(
                    f"outbox {self.path} has schema version {version}; this edgernn reads version {SCHEMA_VERSION}"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise PublishError(
                    f"outbox {self.path} is in use by another publisher (another `edgernn run` with this state dir?); "
                    "give each device its own state directory"
                ) from exc
            raise PublishError(f"cannot open outbox {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise PublishError(f"outbox {self.path} is not a readable SQLite database: {exc}") from exc
        return db

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    # -- producing --------------------------------------------------------------------------------------------
    def append(self, stream: str, topic: str, render: Callable[[int], bytes]) -> int:
        """Give `stream` its next seq, queue `render(seq)` under `topic`; returns the seq. Durable at `commit`."""
        with self._plock:  # producers one at a time, so queue order is seq order
            seq = self._seq.get(stream, 0) + 1
            payload = render(seq)  # outside _qlock: the worker's commit never waits for JSON encoding
            with self._qlock:
                self._queue.append((stream, seq, topic, payload, time.time()))
                self._seq[stream] = seq
                self._dirty_seq.add(stream)
                self._rows += 1
                self._bytes += len(topic) + len(payload)
                if self._dirty_since is None:
                    self._dirty_since = time.monotonic()
            return seq

    def resume_seq(self, last: Mapping[str, int], margin: int = 0) -> int:
        """A fresh outbox (new, emptied or replaced) continues each stream's seq after `last` (the publisher's
        seqs saved with the state checkpoint) plus `margin`: see `resumed_seqs`. No-op once the outbox holds
        any seq (from its file, given out, or resumed). Returns the number of streams moved on; `resumed` says
        how, for the status payload."""
        with self._plock, self._qlock:
            if self._seq:
                return 0
            moved = resumed_seqs(self._seq, last, margin)
            if moved:
                self._dirty_seq.update(moved)
                self._mark_dirty()
                self.resumed = "checkpoint" if not margin else f"checkpoint + {margin} (unclean stop)"
        return len(moved)

    def last_seqs(self) -> dict[str, int]:
        """Each stream's last seq given out (committed or not)."""
        with self._qlock:
            return dict(self._seq)

    def last_seq(self, stream: str) -> int:
        with self._qlock:
            return self._seq.get(stream, 0)

    @property
    def streams(self) -> list[str]:
        with self._qlock:
            return sorted(self._seq)

    @property
    def uncommitted(self) -> int:
        """Rows appended since the last commit."""
        return len(self._queue)

    def commit_due(self, now: float | None = None) -> float | None:
        """Seconds until the pending group should be committed (<= 0: now), or None when nothing is pending."""
        now = time.monotonic() if now is None else now
        since = self._dirty_since
        if since is None:
            if self.config.max_age_s is not None and self._rows and now - self._age_checked >= AGE_CHECK_S:
                return 0.0  # nothing new, but old rows may have aged past the bound
            acked = self._acked_since
            return None if acked is None else acked + self.config.ack_interval - now
        if len(self._queue) >= self.config.group_rows:
            return 0.0
        return since + self.config.group_interval - now

    def commit(self, keep_upto: int = 0) -> int:
        """Write the queued rows, apply the bounds (sparing ids <= keep_upto), and make everything durable.

        Returns the last committed id.
        """
        with self._lock:
            with self._qlock:
                age_due = self._rows > 0 and time.monotonic() - self._age_checked >= AGE_CHECK_S
                clean = self._dirty_since is None and self._acked_since is None
                if clean and not (age_due and self.config.max_age_s is not None):
                    return self._committed_upto
                queue, self._queue = self._queue, []
                seqs = [(s, self._seq[s]) for s in self._dirty_seq]
                self._dirty_seq.clear()
                self._dirty_since = self._acked_since = None
            first_new = self._committed_upto
            dropped_before, reread = self._dropped, False
            try:
                last_id = self._insert(queue) if queue else 0
                self._save_seqs(seqs)
                dropped = self._enforce_limits(keep_upto)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "disk is full" not in str(exc).lower():
                    raise
                self._dropped = dropped_before
                queue, last_id, dropped = self._commit_when_full(queue, seqs, keep_upto)
                reread = True  # rows went from under the hot list: read back from the table from here on
            self._db.execute("BEGIN")
            self._acked_ranges.clear()
            self._disk.room_back()
            if queue:
                self._committed_upto = last_id
                # AUTOINCREMENT with one writer: the group's ids are consecutive, ending at last_id.
                first_id = last_id - len(queue) + 1
                if dropped or reread or len(self._hot) + len(queue) > HOT_ROWS or first_id <= first_new:
                    self._hot.clear()  # read back from the table from here on
                    self._hot_after = last_id
                else:
                    self._hot.extend(Row(first_id + i, st, sq, tp, pl) for i, (st, sq, tp, pl, _) in enumerate(queue))
            elif dropped or reread:
                self._hot.clear()
                self._hot_after = self._committed_upto
            return self._committed_upto

    def _recount(self) -> None:
        """Rows and bytes from the table, plus those queued since this commit began (after a rollback)."""
        rows, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0) FROM outbox"
        ).fetchone()
        with self._qlock:
            self._rows = int(rows) + len(self._queue)
            self._bytes = int(size) + sum(len(q[2]) + len(q[3]) for q in self._queue)

    def _commit_when_full(
        self, queue: list[Queued], seqs: list[tuple[str, int]], keep_upto: int
    ) -> tuple[list[Queued], int, int]:
        """The disk is full (outbox_disk.py decides what to give up); this outbox's writes for it."""
        base = self._dropped

        def write(rows: list[Queued], delete_upto: int, dropped: int) -> tuple[int, int]:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", self._acked_ranges)
                deleted = self._db.execute(
                    "DELETE FROM outbox WHERE id > ? AND id <= ?", (keep_upto, delete_upto)
                ).rowcount
                last_id = self._insert(rows) if rows else 0
                self._save_seqs(seqs)
                self._dropped = base + dropped + deleted
                self._save_dropped()
                self._recount()
                self._enforce_limits(keep_upto)  # down to the cap: counted in `dropped` and `not_kept` there
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:
                self._dropped = base
                raise
            return last_id, deleted

        def give_up(dropped: int) -> None:
            rollback(self._db)
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", self._acked_ranges)
            try:
                self._db.execute("COMMIT")  # a delete frees pages: it may fit where nothing else does
            except sqlite3.OperationalError:
                rollback(self._db)  # then the acknowledged rows are sent again after a restart
            self._dropped = base + dropped
            with self._qlock:
                self._dirty_seq.update(st for st, _ in seqs)
                self._mark_dirty()

        out = self._disk.commit_when_full(self._db, queue, keep_upto, self._committed_upto, write, give_up)
        self._recount()
        return out

    def _save_seqs(self, seqs: list[tuple[str, int]]) -> None:
        if seqs:
            self._db.executemany(
                "INSERT INTO seq (stream, last) VALUES (?, ?) ON CONFLICT(stream) DO UPDATE SET last = excluded.last",
                seqs,
            )

    def _insert(self, queue: list[Queued]) -> int:
        """Multi-row INSERTs: one SQLite step per chunk instead of one per row. (Every step releases and
        re-takes the GIL; with the network thread busy, a row-by-row executemany crawled.) -> last id."""
        last = 0
        for start in range(0, len(queue), self._chunk):
            part = queue[start : start + self._chunk]
            sql = "INSERT INTO outbox (stream, seq, topic, payload, created) VALUES " + ",".join(
                ["(?, ?, ?, ?, ?)"] * len(part)
            )
            cur = self._db.execute(sql, [v for row in part for v in row])
            last = int(cur.lastrowid or 0)
        return last

    # -- consuming --------------------------------------------------------------------------------------------
    def pending(self, after_id: int, limit: int) -> list[Row]:
        """Committed rows with id > after_id, oldest first (from memory when the group was just written)."""
        with self._lock:
            if after_id >= self._hot_after:
                while self._hot and self._hot[0].id <= after_id:
                    self._hot.popleft()  # handed over already
                if self._hot or after_id >= self._committed_upto:
                    return list(itertools.islice(self._hot, limit))
            cur = self._db.execute(
                "SELECT id, stream, seq, topic, payload FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after_id, self._committed_upto, limit),
            )
            return [Row(i, s, q, t, bytes(p)) for i, s, q, t, p in cur.fetchall()]

    def ack(self, rows: Iterable[Row]) -> int:
        """Delete acknowledged rows (durable at the next commit, at most `ack_interval` later; a crash before
        it only re-sends them)."""
        rows = list(rows)
        if not rows:
            return 0
        with self._lock:
            # Acknowledgements come mostly in order: delete id ranges, one SQLite step each.
            ids = sorted(r.id for r in rows)
            ranges, lo = [], ids[0]
            for prev, cur in itertools.pairwise(ids):
                if cur != prev + 1:
                    ranges.append((lo, prev))
                    lo = cur
            ranges.append((lo, ids[-1]))
            self._db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", ranges)
            self._acked_ranges.extend(ranges)  # done again if this transaction is rolled back (disk full)
            acked = set(ids)
            while self._hot and self._hot[0].id in acked:
                self._hot.popleft()
            with self._qlock:
                self._rows -= len(rows)
                self._bytes -= sum(r.size for r in rows)
                if self._acked_since is None:
                    self._acked_since = time.monotonic()
            return len(rows)

    def count_dropped(self, n: int) -> None:
        """Count messages lost outside the outbox (e.g. rejected by the broker), persisted with `dropped`."""
        if n:
            with self._lock:
                self._dropped += n
                self._save_dropped()
                with self._qlock:
                    self._mark_dirty()

    def _enforce_limits(self, keep_upto: int) -> int:
        """Delete the oldest rows past the bounds, sparing ids <= keep_upto (already handed to the client).

        Called by `commit` with the lock held; dropped rows are added to the persisted `dropped` counter.
        """
        cfg = self.config
        cap = self._disk.cap
        max_bytes = cfg.max_bytes if cap is None else min(cfg.max_bytes, cap)
        cutoff = None if cfg.max_age_s is None else time.time() - cfg.max_age_s
        self._age_checked = time.monotonic()
        dropped, after = 0, keep_upto
        while self._rows > 0:
            over = self._rows > cfg.max_rows or self._bytes > max_bytes
            if not over:
                if cutoff is None:
                    break
                first = self._db.execute(
                    "SELECT created FROM outbox WHERE id > ? ORDER BY id LIMIT 1", (after,)
                ).fetchone()
                if first is None or first[0] >= cutoff:
                    break
            batch = self._db.execute(
                "SELECT id, length(topic) + length(payload), created FROM outbox WHERE id > ? ORDER BY id LIMIT 256",
                (after,),
            ).fetchall()
            victims = []
            for row_id, size, created in batch:
                if not (over or (cutoff is not None and created < cutoff)):
                    break
                victims.append((row_id,))
                with self._qlock:
                    self._rows -= 1
                    self._bytes -= size
                over = self._rows > cfg.max_rows or self._bytes > max_bytes
            if not victims:
                break
            # the victims are every row in (after, last victim]: one range delete
            self._db.execute("DELETE FROM outbox WHERE id > ? AND id <= ?", (after, victims[-1][0]))
            dropped += len(victims)
            after = victims[-1][0]
        if dropped:
            self._dropped += dropped
            self._save_dropped()
            if cap is not None:
                self.disk["not_kept"] = self.disk.get("not_kept", 0) + dropped
        return dropped

    def _save_dropped(self) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('dropped', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (self._dropped,),
        )

    def _mark_dirty(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()

    # -- figures ----------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Rows not yet acknowledged by the broker (committed or not)."""
        return self._rows

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Rows deleted to respect the bounds (or rejected by the broker), over the life of this outbox file."""
        return self._dropped

    def oldest_age(self) -> float:
        with self._lock:
            row = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
            return 0.0 if row is None else max(0.0, time.time() - float(row[0]))

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self.commit()
                self._db.execute("COMMIT")
            finally:
                self._db.close()
                self._db = None  # type: ignore[assignment]


def resumed_seqs(seqs: dict[str, int], last: Mapping[str, int], margin: int) -> list[str]:
    """Move each stream's counter in `seqs` on to `last[stream] + margin` where that is further; returns the
    streams moved. `margin`: seqs that may have been given out after `last` was saved, before an unclean stop,
    so a seq is never given to two predictions (a stream at 0 has given none: it stays at 0)."""
    moved = []
    for stream, n in last.items():
        start = int(n) + margin if n else 0
        if start > seqs.get(stream, 0):
            seqs[stream] = start
            moved.append(stream)
    return moved


def db_variable_limit(db: sqlite3.Connection) -> int:
    """SQLITE_LIMIT_VARIABLE_NUMBER: 32766 since SQLite 3.32, 999 before."""
    return int(db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
