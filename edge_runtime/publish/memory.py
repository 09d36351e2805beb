"""`MemoryPublisher`: the in-memory fake every test and the simulator can use (httpx's MockTransport idea).

It runs the same outbox as the MQTT publisher (sequence numbers, bounds, drop-oldest, `dropped`), and
"delivers" to a list instead of a broker. Set `online = False` to simulate a broker outage: predictions wait
in the outbox, and drain in order when `online` is True again.

    pub = MemoryPublisher("dev1")
    pub.publish(pred)                       # -> seq
    pub.predictions()                       # delivered prediction payloads, as dicts, in order
    pub.messages                            # every Message (predictions, status, discovery), in order
    pub.delivered_seqs                      # the seq of each delivered prediction, in order
    pub.retained["edgernn/dev1/status"]     # the last retained payload per topic

Without a state_dir the outbox is a `MemoryOutbox` and each publish is delivered at once; pass `store=` to
keep one across publishers (a simulated device's flash, reopened after a simulated reboot). With a
state_dir the outbox is the SQLite file and commits in groups like the real publisher; `flush()` delivers
what is still waiting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.publish.base import (
    DEFAULT_PREFIX,
    Message,
    OutboxPublisher,
    check_name,
    check_prefix,
    status_payload,
    status_topic,
    will_payload,
)
from edge_runtime.publish.discovery import make_announcer
from edge_runtime.publish.ha_options import HaOptions
from edge_runtime.publish.memory_outbox import MemoryOutbox
from edge_runtime.publish.outbox import OUTBOX_FILE, Outbox, OutboxConfig
from edge_runtime.stream.prediction import Publishable
from edgernn.errors import ConfigError


class MemoryPublisher(OutboxPublisher):
    def __init__(
        self,
        device: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        state_dir: str | Path | None = None,
        outbox: OutboxConfig | None = None,
        discovery: bool = False,
        manifest: Manifest | None = None,
        discovery_prefix: str = "homeassistant",
        units: Mapping[str, str] | None = None,
        store: MemoryOutbox | None = None,
        ha: HaOptions | None = None,
    ) -> None:
        self.device = check_name("device", device)
        self.prefix = check_prefix(prefix)
        self.messages: list[Message] = []
        self.delivered_seqs: list[int] = []  # beside `messages`: whoever counts deliveries needs no JSON parsing
        self.retained: dict[str, bytes] = {}
        self._durable = state_dir is not None
        self._topics: dict[str, str] = {}
        if store is not None and state_dir is not None:
            raise ConfigError("MemoryPublisher: give a state_dir (SQLite outbox) or a store (in RAM), not both")
        self._outbox: Outbox | MemoryOutbox
        if state_dir is not None:
            self._outbox = Outbox(Path(state_dir) / OUTBOX_FILE, outbox)
        else:
            self._outbox = store if store is not None else MemoryOutbox(outbox)
        self._announcer = make_announcer(discovery, manifest, device, prefix, discovery_prefix, units, ha)
        self._counters: dict[str, Any] = {}
        self._delivered = 0
        self._online = True
        self._closed = False
        self._connect()

    # -- the Publisher interface ------------------------------------------------------------------------------
    def publish(self, pred: Publishable) -> int:
        stream = pred.stream
        topic = self._topic(stream)  # checks the name before anything is announced under it
        if self._announcer and self._online and not self._closed:  # a new stream's config before its first state
            self._send_all(self._announcer.new_stream(stream))
        if self._online and not self._closed and isinstance(box := self._outbox, MemoryOutbox):
            row = box.handover(stream, topic, pred.payload)
            if row is not None:  # nothing was waiting: delivered as it is made
                self.messages.append(Message(row.topic, row.payload))
                self.delivered_seqs.append(row.seq)
                self._delivered += 1
                self._ha_state(pred, row.seq)
                return row.seq
        _, seq = self._append(pred)
        if not self._durable:
            self._deliver()
        elif (due := self._outbox.commit_due()) is not None and due <= 0:
            self._commit_and_deliver()
        self._ha_state(pred, seq)
        return seq

    def _ha_state(self, pred: Publishable, seq: int) -> None:
        """The rate-limited retained state Home Assistant reads (with discovery), while the broker is up."""
        if self._announcer and self._online and not self._closed:
            self._send_all(self._announcer.state(pred, seq))

    def publish_many(self, preds: Sequence[Publishable]) -> list[int]:
        """Several predictions in order: delivered at once when the broker is up and nothing waits (a simulated
        device's block of ticks), else one `publish` each."""
        box = self._outbox
        if self._online and not self._closed and not self._announcer and isinstance(box, MemoryOutbox):
            topic = self._topic  # every stream name checked before any seq is given
            rows = box.handover_many([(p.stream, topic(p.stream), p.payload) for p in preds])
            if rows is not None:
                self.messages.extend([Message(r.topic, r.payload) for r in rows])
                seqs = [r.seq for r in rows]
                self.delivered_seqs.extend(seqs)
                self._delivered += len(rows)
                return seqs
        return super().publish_many(preds)

    def status(self, counters: Mapping[str, Any]) -> None:
        self._counters = dict(counters)
        if self._online and not self._closed:
            self._send_status("online")
            if self._announcer:
                self._send_all(self._announcer.due_states())

    def sync(self) -> None:
        self._outbox.commit()

    def flush(self, timeout: float = 10.0) -> bool:
        self._commit_and_deliver()
        return self._outbox.depth == 0

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._commit_and_deliver()
        if self._online:
            if self._announcer:
                self._send_all(self._announcer.due_states(all_pending=True))  # HA shows the last prediction
            self._send_status("offline")
        self._closed = True
        self._outbox.close()

    @property
    def connected(self) -> bool:
        return self._online and not self._closed

    # -- the fake's controls ----------------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        return self._online

    @online.setter
    def online(self, value: bool) -> None:
        """False: the broker is unreachable (the outbox fills). True: reconnect, announce, drain in order."""
        if value and not self._online and not self._closed:
            self._online = True
            self._connect()
            self._commit_and_deliver()
        elif not value and self._online:
            # The broker sends the last will when it notices the connection is gone.
            self._online = False
            self._retain(Message(status_topic(self.prefix, self.device), will_payload(self.device), retain=True))

    def receive(self, topic: str, payload: bytes | str) -> None:
        """A message from the broker: Home Assistant's `homeassistant/status` = `online` re-announces."""
        data = payload.encode() if isinstance(payload, str) else payload
        if self._announcer and topic == self._announcer.ha_status_topic and data == b"online" and self._online:
            self._send_all(self._announcer.all())

    def predictions(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Delivered prediction payloads in delivery order (optionally one stream's)."""
        out = []
        for m in self.messages:
            if m.topic.endswith("/prediction"):
                d = json.loads(m.payload)
                if stream is None or d["stream"] == stream:
                    out.append(d)
        return out

    # -- internals --------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._send_status("online")
        if self._announcer:
            self._send_all(self._announcer.all(self._outbox.streams))

    def _commit_and_deliver(self) -> None:
        self._outbox.commit()
        self._deliver()
        self._outbox.commit()

    def _deliver(self) -> None:
        """Hand every committed row to the "broker" (it acknowledges at once); nothing while offline."""
        box = self._outbox
        if not self._online:
            box.commit()  # the bounds apply while the outbox fills
            return
        while rows := box.pending(0, 1024):
            self.messages.extend([Message(r.topic, r.payload) for r in rows])
            self.delivered_seqs.extend([r.seq for r in rows])
            self._delivered += box.ack(rows)

    def _send_status(self, state: str) -> None:
        figures = {**self.outbox_figures(), "bytes": self._outbox.bytes}
        self._retain(
            Message(
                status_topic(self.prefix, self.device),
                status_payload(state, self.device, self._counters, figures),
                retain=True,
            )
        )

    def _send_all(self, messages: list[Message]) -> None:
        for m in messages:
            self._retain(m)

    def _retain(self, m: Message) -> None:
        self.messages.append(m)
        if m.retain:
            if m.payload:
                self.retained[m.topic] = m.payload
            else:
                self.retained.pop(m.topic, None)

    def remove_discovery(self) -> None:
        """Clear this publisher's Home Assistant config topics (the entities disappear)."""
        if self._announcer:
            self._send_all(self._announcer.removal())
