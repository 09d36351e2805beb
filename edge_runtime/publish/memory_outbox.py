"""`MemoryOutbox`: the outbox in RAM, with the semantics of the SQLite `Outbox` and none of its cost per row.

Same sequence numbers per stream, send order, bounds (rows, bytes, age) with drop-oldest and a `dropped`
count. It survives as long as the object does: a simulated device keeps it across its simulated reboots
(its flash), and a `MemoryPublisher` without a state directory uses one. A simulated fleet publishes up to
100k predictions a second; a SQLite transaction per prediction, per device, was 80% of its time (measured).
What only a real disk can show (a crash mid-commit, fsync cost) is the SQLite outbox's, tested there.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from edge_runtime.publish.outbox import OutboxConfig, Row, resumed_seqs


class MemoryOutbox:
    """Thread-safe. The part of `Outbox`'s interface that `MemoryPublisher` uses."""

    def __init__(self, config: OutboxConfig | None = None) -> None:
        self.config = config or OutboxConfig()
        self._rows: OrderedDict[int, tuple[Row, float]] = OrderedDict()  # id -> (row, created), id order
        self._ids = itertools.count(1)
        self._seq: dict[str, int] = {}
        self._bytes = 0
        self._dropped = 0
        self._lock = threading.Lock()

    # -- producing --------------------------------------------------------------------------------------------
    def append(self, stream: str, topic: str, render: Callable[[int], bytes]) -> int:
        """Give `stream` its next seq, keep `render(seq)` under `topic`; returns the seq."""
        with self._lock:
            seq = self._seq.get(stream, 0) + 1
            row = Row(next(self._ids), stream, seq, topic, render(seq))
            self._seq[stream] = seq
            self._rows[row.id] = (row, time.time())
            self._bytes += row.size
            return seq

    def handover(self, stream: str, topic: str, render: Callable[[int], bytes]) -> Row | None:
        """For a broker that is up and acknowledges as it receives: when nothing waits, give `stream` its next
        seq and return the row without keeping it (what `append`, `pending` and `ack` would do, at a third of the
        cost); None when rows wait, so the caller appends behind them and order holds."""
        rows = self.handover_many(((stream, topic, render),))
        return None if rows is None else rows[0]

    def handover_many(self, items: Iterable[tuple[str, str, Callable[[int], bytes]]]) -> list[Row] | None:
        """`handover` for (stream, topic, render) items in order, under one lock; None when rows wait."""
        with self._lock:
            if self._rows:
                return None
            seqs, ids, out = self._seq, self._ids, []
            for stream, topic, render in items:
                seq = seqs[stream] = seqs.get(stream, 0) + 1
                out.append(Row(next(ids), stream, seq, topic, render(seq)))
            return out

    def resume_seq(self, last: Mapping[str, int], margin: int = 0) -> int:
        """Before its first seq, continue each stream after `last` + `margin` (as `Outbox.resume_seq`); no-op
        once seqs were given. Returns the number of streams moved on."""
        with self._lock:
            return 0 if self._seq else len(resumed_seqs(self._seq, last, margin))

    def last_seqs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._seq)

    def last_seq(self, stream: str) -> int:
        return self._seq.get(stream, 0)

    @property
    def streams(self) -> list[str]:
        return sorted(self._seq)

    def commit_due(self, now: float | None = None) -> float | None:
        """0 when rows have aged past the bound (a commit drops them), else None: nothing waits for a disk."""
        return 0.0 if self._aged() else None

    def commit(self, keep_upto: int = 0) -> int:
        """Apply the bounds (sparing ids <= keep_upto, already handed to the client); returns the last id."""
        cfg = self.config
        with self._lock:
            if not self._rows:
                return 0
            if len(self._rows) > cfg.max_rows or self._bytes > cfg.max_bytes or self._aged():
                self._enforce_limits(keep_upto)
            return next(reversed(self._rows), 0)

    def _aged(self) -> bool:
        """The oldest row is past max_age_s (one look at the front of the queue)."""
        max_age = self.config.max_age_s
        first = next(iter(self._rows.values()), None) if max_age is not None else None
        return first is not None and first[1] < time.time() - max_age  # type: ignore[operator]

    def _enforce_limits(self, keep_upto: int) -> None:
        """Drop the oldest rows not yet handed over while a bound is passed; count them in `dropped`."""
        cfg = self.config
        cutoff = -1.0 if cfg.max_age_s is None else time.time() - cfg.max_age_s
        victims, rows, size = [], len(self._rows), self._bytes
        for row_id, (row, created) in self._rows.items():  # oldest first; stops at the first row kept
            if row_id <= keep_upto:
                continue
            if rows <= cfg.max_rows and size <= cfg.max_bytes and created >= cutoff:
                break
            victims.append(row_id)
            rows, size = rows - 1, size - row.size
        for row_id in victims:
            self._bytes -= self._rows.pop(row_id)[0].size
        self._dropped += len(victims)

    # -- consuming --------------------------------------------------------------------------------------------
    def pending(self, after_id: int, limit: int) -> list[Row]:
        """Rows with id > after_id, oldest first."""
        with self._lock:
            rows = (row for i, (row, _) in self._rows.items() if i > after_id)
            return list(itertools.islice(rows, limit))

    def ack(self, rows: Iterable[Row]) -> int:
        """Forget acknowledged rows."""
        n = 0
        with self._lock:
            for r in rows:
                if self._rows.pop(r.id, None) is not None:
                    self._bytes -= r.size
                    n += 1
        return n

    def count_dropped(self, n: int) -> None:
        """Count messages lost outside the outbox (e.g. rejected by the broker)."""
        with self._lock:
            self._dropped += n

    # -- figures ----------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._rows)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        """Nothing to release: what is unacknowledged stays for the next publisher that reopens this outbox."""
