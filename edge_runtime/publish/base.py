"""The `Publisher` interface, topic names and the status payload (standard library only).

Topics, under a configurable prefix (default `edgernn`):
    <prefix>/<stream>/prediction   one JSON object per prediction (docs/prediction.schema.json), QoS 1
    <prefix>/<device>/status       retained JSON: {"state": "online" | "offline", counters, outbox figures};
                                   {"state": "offline"} is also the last will, sent by the broker when the
                                   device vanishes without saying goodbye
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple

from edge_runtime.publish.memory_outbox import MemoryOutbox
from edge_runtime.publish.outbox import Outbox
from edge_runtime.stream.jsontext import dumps
from edge_runtime.stream.names import name_problem, shown
from edge_runtime.stream.prediction import Publishable
from edgernn.errors import ConfigError, PublishError

DEFAULT_PREFIX = "edgernn"
_FORBIDDEN = set("+#/\0")


def check_name(kind: str, value: str) -> str:
    """A topic level: the one rule for names (`edge_runtime/stream/names.py`): bounded, printable, no wildcards."""
    problem = name_problem(value)
    if problem is not None:
        raise ConfigError(f"invalid {kind} {shown(value)!r}: {problem}")
    return value


def check_prefix(prefix: str) -> str:
    """A prefix may have several levels (`site/edgernn`), each a valid name."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"invalid topic prefix {prefix!r}: must be non-empty, e.g. 'edgernn' or 'site1/edgernn'")
    for level in prefix.split("/"):
        if not level or _FORBIDDEN & set(level):
            raise ConfigError(f"invalid topic prefix {prefix!r}: levels must be non-empty and without + # NUL")
    return prefix


def prediction_topic(prefix: str, stream: str) -> str:
    return f"{prefix}/{stream}/prediction"


def status_topic(prefix: str, device: str) -> str:
    return f"{prefix}/{device}/status"


class Message(NamedTuple):
    """What a publisher handed to the broker (MemoryPublisher keeps these; tests read them). A tuple: the
    in-memory broker makes one per prediction."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


def status_payload(
    state: str, device: str, counters: Mapping[str, Any] | None, outbox: Mapping[str, Any] | None
) -> bytes:
    """The retained status message. Holds no configuration, so never a credential."""
    from edgernn import __version__

    body: dict[str, Any] = {"state": state, "device": device, "time": round(time.time(), 3), "edgernn": __version__}
    if outbox is not None:
        body["outbox"] = dict(outbox)
    if counters:
        body["counters"] = dict(counters)
    return dumps(body)  # counters may hold NumPy scalars: the wire format's encoder writes them as numbers


def will_payload(device: str) -> bytes:
    return dumps({"state": "offline", "device": device, "reason": "connection lost"})


class Publisher(ABC):
    """Hands each prediction to a broker, durably, with a per-stream sequence number.

    The publisher is the one owner of sequence numbers: `publish` gives each prediction its seq (monotonic per
    stream across restarts when the outbox lives on disk, or when the device loop resumes it from the state
    checkpoint: `last_seqs`, `resume_seq`; a `Prediction`'s `seq` is set) and returns it; delivery happens in
    the background. `flush` waits until the broker has acknowledged everything; `close` says goodbye (status
    offline) and keeps what is unacknowledged for the next start.
    """

    device: str
    prefix: str

    @abstractmethod
    def publish(self, pred: Publishable) -> int: ...

    def publish_many(self, preds: Sequence[Publishable]) -> list[int]:
        """Several predictions in order (a backlog, a block of ticks): what `publish` of each does; their seqs."""
        return [self.publish(p) for p in preds]

    @abstractmethod
    def last_seqs(self) -> dict[str, int]:
        """Each stream's last seq given out: what the device loop saves with every state checkpoint."""

    @abstractmethod
    def resume_seq(self, last: Mapping[str, int], margin: int = 0) -> int:
        """Continue each stream's seq after `last` (saved with the state checkpoint) + `margin` when this
        publisher's own store is fresh (new, lost or replaced): a seq is never given to two predictions.
        No-op when the store has seqs of its own. Returns the number of streams moved on."""

    @abstractmethod
    def status(self, counters: Mapping[str, Any]) -> None:
        """Publish the retained status now with these counters (readings, bad readings by reason, ...)."""

    @abstractmethod
    def sync(self) -> None:
        """Write every prediction published so far to the outbox on disk, now (one fsync; delivery goes on).

        Call it before saving anything that says those predictions were made, e.g. a state checkpoint:
        then a crash can never leave a checkpoint ahead of the predictions it implies.
        """

    @abstractmethod
    def flush(self, timeout: float = 10.0) -> bool:
        """Commit and wait until the outbox is empty (all acknowledged); False if time ran out first."""

    @abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Flush for at most `timeout`, publish status offline, disconnect. Idempotent."""

    @abstractmethod
    def remove_discovery(self) -> None:
        """Clear this publisher's Home Assistant discovery configs (empty retained payloads): entities go."""

    @property
    @abstractmethod
    def depth(self) -> int:
        """Predictions not yet acknowledged by the broker."""

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Predictions deleted to respect the outbox bounds (or rejected by the broker), ever, for this outbox."""

    @property
    @abstractmethod
    def delivered(self) -> int:
        """Predictions acknowledged by the broker since this publisher was opened."""

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    def outbox_figures(self) -> dict[str, Any]:
        return {"depth": self.depth, "dropped": self.dropped, "delivered": self.delivered}

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class OutboxPublisher(Publisher):
    """What every publisher over an `Outbox` shares: the outbox figures and appending a prediction."""

    _outbox: Outbox | MemoryOutbox
    _delivered: int
    _closed: bool
    _topics: dict[str, str]  # stream -> its prediction topic

    def _append(self, pred: Publishable) -> tuple[str, int]:
        """Give `pred` its seq and queue it in the outbox; returns (stream, seq)."""
        if self._closed:
            raise PublishError("cannot publish: the publisher is closed")
        stream = pred.stream
        return stream, self._outbox.append(stream, self._topic(stream), pred.payload)

    def publish_many(self, preds: Sequence[Publishable]) -> list[int]:
        """`publish` of each, every stream name checked first: a bad one refuses the batch before any seq."""
        for p in preds:
            self._topic(p.stream)
        return [self.publish(p) for p in preds]

    def last_seqs(self) -> dict[str, int]:
        return self._outbox.last_seqs()

    def resume_seq(self, last: Mapping[str, int], margin: int = 0) -> int:
        return self._outbox.resume_seq(last, margin)

    def _topic(self, stream: str) -> str:
        """The prediction topic of `stream`, checked once per stream (a publisher sees few, many times)."""
        topic = self._topics.get(stream)
        if topic is None:
            topic = self._topics[stream] = prediction_topic(self.prefix, check_name("stream", stream))
        return topic

    @property
    def depth(self) -> int:
        return self._outbox.depth

    @property
    def dropped(self) -> int:
        return self._outbox.dropped

    @property
    def delivered(self) -> int:
        return self._delivered

    def outbox_figures(self) -> dict[str, Any]:
        figures = super().outbox_figures()
        box = self._outbox
        if not isinstance(box, Outbox):
            return figures
        if box.disk:  # what the disk would not give or take (docs/durability.md)
            figures["disk"] = dict(box.disk)
        figures["epoch"] = box.epoch  # changes when the outbox file (the owner of seq) was replaced
        if box.resumed:
            figures["seq_resumed"] = box.resumed
        return figures

    @property
    def outbox(self) -> Outbox | MemoryOutbox:
        return self._outbox
