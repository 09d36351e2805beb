"""`StdoutPublisher`: `edgernn run` without --mqtt, each prediction one JSON line on standard output.

It is a publisher like the MQTT one, so the seq it prints comes from the same owner: the outbox code that
gives every publisher its seqs (a `MemoryOutbox` that never holds a row: a line is delivered as it is made).
Across restarts the device loop carries the seqs on, as for MQTT (`last_seqs` saved with each state
checkpoint, `resume_seq` at start).

    pub = StdoutPublisher("dev1", sys.stdout)
    pub.publish(pred)        # -> seq; writes {"seq":1,...}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from edge_runtime.publish.base import DEFAULT_PREFIX, OutboxPublisher, check_name, check_prefix
from edge_runtime.publish.memory_outbox import MemoryOutbox
from edge_runtime.stream.prediction import Publishable
from edgernn.errors import PublishError


class StdoutPublisher(OutboxPublisher):
    def __init__(self, device: str, out: TextIO | None, *, prefix: str = DEFAULT_PREFIX) -> None:
        """`out` None: print nothing (--quiet); seqs are given all the same."""
        self.device = check_name("device", device)
        self.prefix = check_prefix(prefix)
        self._out = out
        self._memory = MemoryOutbox()
        self._outbox = self._memory
        self._topics: dict[str, str] = {}
        self._delivered = 0
        self._closed = False

    def publish(self, pred: Publishable) -> int:
        if self._closed:
            raise PublishError("cannot publish: the publisher is closed")
        row = self._memory.handover(pred.stream, self._topic(pred.stream), pred.payload)
        if row is None:  # the outbox never keeps a row, so nothing can be waiting
            raise PublishError("stdout publisher: a row was left waiting in its outbox")
        if self._out is not None:
            self._out.write(row.payload.decode() + "\n")
        self._delivered += 1
        return row.seq

    def status(self, counters: Mapping[str, Any]) -> None:
        """Standard output has no status topic: the run's summary goes to stderr at exit."""

    def sync(self) -> None:
        """Every line is written as it is made; the seqs are saved by the device loop."""

    def flush(self, timeout: float = 10.0) -> bool:
        if self._out is not None:
            self._out.flush()
        return True

    def close(self, timeout: float = 5.0) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    def remove_discovery(self) -> None:
        """No Home Assistant discovery on standard output."""

    @property
    def connected(self) -> bool:
        return not self._closed
