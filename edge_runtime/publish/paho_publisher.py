"""`MqttPublisher`: the durable outbox in front of paho-mqtt 2.x (CallbackAPIVersion.VERSION2), QoS 1.

Why our own outbox: paho keeps unacknowledged messages in memory only, so a crash or power cut loses them.
Here a prediction is committed to SQLite before paho sees it and deleted only when its PUBACK arrives.

Threads (shared by every publisher in the process, see netloop.py) and who owns what:
    caller      publish(): seq assigned, row queued in memory (microseconds; never waits on the disk)
    scheduler   step(), when due or poked: commit the group (one fsync), apply bounds, delete acknowledged
                rows, hand committed rows to paho in id order (at most `window` unacknowledged), status
    network     paho's socket I/O and callbacks: on_connect / on_disconnect / on_publish record what
                happened and poke the scheduler; reconnects with back-off

Order across a reconnect: paho re-sends the rows it already holds (with DUP) right after CONNACK; the
scheduler hands it no new row until those are acknowledged, so the broker receives every stream in seq order.
After a restart the first step starts from the oldest row in the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge_runtime.publish.base import (
    Message,
    OutboxPublisher,
    status_payload,
    status_topic,
    will_payload,
)
from edge_runtime.publish.config import BrokerAddress, BrokerConfig
from edge_runtime.publish.discovery import Announcer
from edge_runtime.publish.netloop import NetLoop, Scheduler, wait_for
from edge_runtime.publish.outbox import Outbox, Row
from edge_runtime.publish.paho_client import connect_kwargs, new_client, refused, tls_error
from edge_runtime.stream.names import shown
from edge_runtime.stream.prediction import Publishable
from edgernn.errors import EdgeRNNError, PublishError

log = logging.getLogger("edge_runtime.publish")


class MqttPublisher(OutboxPublisher):
    def __init__(
        self,
        address: BrokerAddress,
        device: str,
        *,
        prefix: str,
        config: BrokerConfig,
        outbox: Outbox,
        announcer: Announcer | None = None,
        window: int = 1000,
    ) -> None:
        self.address, self.device, self.prefix, self.config = address, device, prefix, config
        self.client_id = config.client_id or f"edgernn-{device}"
        self._outbox: Outbox = outbox  # a real broker: always the SQLite outbox
        self._topics: dict[str, str] = {}
        self._announcer = announcer
        self._window = window
        self._status_topic = status_topic(prefix, device)
        # scheduler-thread state (step_lock)
        self.step_lock = threading.Lock()
        self._inflight: dict[int, Row] = {}  # paho mid -> row handed to paho, not yet acknowledged
        self._sent_upto = 0  # highest outbox id handed to paho
        # shared state: plain assignments and deque appends, safe under the GIL
        self._acks: deque[tuple[int, ReasonCode, float]] = deque()  # (mid, reason, arrival time)
        # Rows acknowledged in the last `resend_acked_s` seconds, re-sent after a reconnect: Mosquitto
        # acknowledges before its autosave, so a broker killed in that moment loses them (measured here).
        self._recent: deque[tuple[float, Row]] = deque(maxlen=100_000)
        self._down_at = 0.0  # when the connection last dropped
        self._connects = 0  # CONNACKs so far (paho thread) ...
        self._connects_seen = 0  # ... and those the scheduler has handled
        self._ack_batch = max(1, window // 4)
        self._max_queue = max(8 * outbox.config.group_rows, 4096)  # rows waiting for a commit before publish waits
        self._loop = NetLoop.shared()
        self._sched = Scheduler.shared()
        self._retry_delay = 1.0
        self._retry_pending = False
        self._connected = False
        self._barrier = False  # set on disconnect: hand nothing new until paho's re-sends are acknowledged
        self._fatal: EdgeRNNError | None = None
        self._first_connack = threading.Event()
        self._force_commit = False
        self._closed = False
        self._counters: dict[str, Any] = {}
        self._delivered = 0
        self._rejected = 0
        self._last_status = time.monotonic()
        self._fail_logged = 0.0
        self._client = self._make_client()

    # -- set-up -----------------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        # clean session: the outbox carries the rest
        client = new_client(self.address, self.config, self.client_id, buffered=True)
        client.will_set(self._status_topic, will_payload(self.device), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._loop.attach(client)
        return client

    def start(self) -> MqttPublisher:
        """Connect (waiting up to `connect_timeout` for the broker's answer) and start delivering.

        A refused login raises AuthError; an unreachable broker does not: predictions wait in the outbox
        and the client keeps reconnecting.
        """
        self._sched.add(self)
        try:
            self._client.connect(self.address.host, self.address.port, **connect_kwargs(self.config))
            reachable = True
        except ssl.SSLError as exc:
            self.close(0)
            raise tls_error(exc, self.address) from exc
        except OSError as exc:
            reachable = False
            log.warning(
                "broker %s not reachable (%s); predictions wait in the outbox and the client keeps retrying",
                self.address,
                exc.strerror or exc,
            )
            self._client.connect_async(self.address.host, self.address.port, **connect_kwargs(self.config))
            self._retry_later()
        if reachable:  # wait for the CONNACK, so a refused login is raised here
            wait_for(self._first_connack.is_set, self.config.connect_timeout, event=self._first_connack)
        if self._fatal is not None:
            fatal = self._fatal
            self.close(0)
            raise fatal
        return self

    # -- the Publisher interface ------------------------------------------------------------------------------
    def publish(self, pred: Publishable) -> int:
        if self._fatal is not None:
            raise self._fatal
        stream, seq = self._append(pred)
        if self._announcer and self._connected:
            if stream not in self._announcer.streams:
                self._send(self._announcer.new_stream(stream))
            self._send(self._announcer.state(pred, seq))  # the rate-limited state HA reads, retained
        n = self._outbox.uncommitted
        if n == 1 or n == self._outbox.config.group_rows:  # start the group timer, or commit a full group now
            self._sched.poke(self)
        elif n > self._max_queue:
            self._wait_for_commit()
        return seq

    def _wait_for_commit(self) -> None:
        """Back-pressure: the disk is slower than the predictions; wait for the scheduler to write the queue."""

        def written() -> bool:
            self._sched.poke(self)
            return not (self._outbox.uncommitted > self._max_queue // 2 and self._fatal is None and self._sched.alive)

        wait_for(written, float("inf"), interval=0.001)

    def status(self, counters: Mapping[str, Any]) -> None:
        self._counters = dict(counters)
        if self._connected and not self._closed:
            self._send_status("online")
            if self._announcer:
                self._send(self._announcer.due_states())

    def sync(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        self._outbox.commit(keep_upto=self._sent_upto)  # in this thread: returns once it is on disk
        self._sched.poke(self)  # hand the new rows over without waiting for the group timer

    def flush(self, timeout: float = 10.0) -> bool:
        self._force_commit = True
        self._sched.poke(self)

        def empty() -> bool:
            if self._fatal is not None:
                raise self._fatal
            return not self._outbox.depth

        return wait_for(empty, timeout, interval=0.005)

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True  # no reconnect is scheduled from now on
        try:
            if self._connected and self._fatal is None and timeout > 0:
                self.flush(timeout)
            if self._connected:
                if self._announcer:  # HA keeps showing the last prediction, not one from up to an interval before
                    self._send(self._announcer.due_states(all_pending=True))
                info = self._client.publish(self._status_topic, self._status_body("offline"), qos=1, retain=True)
                with contextlib.suppress(RuntimeError, ValueError):  # not connected any more: the will covers it
                    wait_for(info.is_published, min(1.0, max(timeout, 0.1)))
            self._client.disconnect()
            # the network thread sends DISCONNECT and closes the socket
            wait_for(lambda: self._client.socket() is None, 2.0, interval=0.005)
        finally:
            self._sched.remove(self)
            self._loop.detach(self._client)
            with self.step_lock:
                self._apply_acks()  # PUBACKs that arrived while closing: those rows need no re-send
                self._outbox.close()

    @property
    def connected(self) -> bool:
        return self._connected

    def remove_discovery(self, timeout: float = 5.0) -> None:
        """Clear this device's Home Assistant config topics (the entities disappear)."""
        if self._announcer:
            infos = self._send(self._announcer.removal())
            for info in infos:
                wait_for(info.is_published, timeout)

    # -- paho callbacks (network thread): record and wake ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            fatal = refused(reason, self.address, self.client_id, self.config)
            if fatal is None:
                log.warning("broker %s refused the connection: %s; retrying", self.address, reason)
                return
            self._fatal = fatal
            client.disconnect()  # retrying cannot fix this: no reconnect follows a fatal refusal
            self._first_connack.set()
            self._sched.poke(self)
            return
        log.info("connected to %s as %r (MQTT %s)", self.address, self.client_id, self.config.protocol)
        self._retry_delay = 1.0
        self._connects += 1
        self._connected = True
        self._send_status("online")
        if self._announcer:
            client.subscribe(self._announcer.ha_status_topic, qos=1)
            self._send(self._announcer.all(self._outbox.streams))
        self._first_connack.set()
        self._sched.poke(self)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        was = self._connected
        self._connected = False
        self._barrier = True
        if was:
            self._down_at = time.monotonic()
        if not self._closed and self._fatal is None:
            if was:
                log.warning(
                    "lost the connection to %s (%s); %d predictions wait in the outbox",
                    self.address,
                    "connection lost" if reason.value == 128 else reason,  # paho says "Unspecified error"
                    self._outbox.depth,
                )
            self._retry_later()
        self._sched.poke(self)

    # -- reconnecting (paho reconnects by itself only inside loop_forever) ------------------------------------
    def _retry_later(self) -> None:
        if self._retry_pending or self._closed or self._fatal is not None:
            return
        self._retry_pending = True
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, self.config.reconnect_max_delay)
        self._loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        """On the network thread: connect in a short-lived thread (a TCP or TLS connect blocks)."""
        threading.Thread(target=self._reconnect, name=f"edgernn-mqtt-connect-{self.device}", daemon=True).start()

    def _reconnect(self) -> None:
        self._retry_pending = False
        if self._closed or self._fatal is not None or self._connected:
            return
        try:
            self._client.reconnect()  # paho re-sends what it holds after the CONNACK
        except OSError as exc:  # ssl.SSLError included: a renewed certificate may fix it
            now = time.monotonic()
            if now - self._fail_logged > 60:
                self._fail_logged = now
                log.warning(
                    "cannot reach broker %s (%s); retrying, %d predictions wait in the outbox",
                    self.address,
                    exc.strerror or exc,
                    self._outbox.depth,
                )
            self._retry_later()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self._acks.append((mid, reason, time.monotonic()))
        n = len(self._acks)
        if n >= self._ack_batch or n >= len(self._inflight):  # a batch, or everything handed over: no polling
            self._sched.poke(self)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._announcer and msg.topic == self._announcer.ha_status_topic and msg.payload == b"online":
            log.info("Home Assistant came online; re-sending discovery")
            self._send(self._announcer.all())

    # -- the scheduler's job --------------------------------------------------------------------------------
    def next_timeout(self) -> float:
        """Until the group is due or the next status; acknowledgements and publishes poke earlier.

        No polling: with a thousand publishers in one process (a simulated fleet), idle ones cost nothing.
        """
        due = self._outbox.commit_due()
        if due is not None:
            return max(0.0, due)
        status_in = self._last_status + self.config.status_interval - time.monotonic()
        return max(0.05, min(status_in, 5.0))

    def failed(self, exc: BaseException) -> None:
        """A bug or a broken disk: publish() fails loudly from now on instead of losing silently."""
        self._fatal = PublishError(f"the MQTT outbox of {self.device} failed: {exc}")

    def step(self) -> None:
        self._apply_acks()
        due = self._outbox.commit_due()
        if due is not None and (due <= 0 or self._force_commit):
            self._force_commit = False
            self._outbox.commit(keep_upto=self._sent_upto)
        if self._connected and self._fatal is None and not self._closed:
            if self._connects != self._connects_seen:
                self._connects_seen = self._connects
                self._resend_recent()
            self._hand_over()
            if time.monotonic() - self._last_status >= self.config.status_interval:
                self._send_status("online")

    def _apply_acks(self) -> None:
        done: list[Row] = []
        keep = self.config.resend_acked_s > 0
        while self._acks:
            mid, reason, at = self._acks.popleft()
            row = self._inflight.pop(mid, None)
            if row is None:
                continue  # a status or discovery message, or a re-sent acknowledged row
            if reason.is_failure:
                self._rejected += 1
                self._outbox.count_dropped(1)
                log.warning("broker %s rejected %s seq %d: %s", self.address, row.topic, row.seq, reason)
            else:
                self._delivered += 1
                if keep:
                    self._recent.append((at, row))
            done.append(row)
        self._outbox.ack(done)
        if self._connected:  # while disconnected, keep what preceded the drop
            horizon = time.monotonic() - self.config.resend_acked_s
            while self._recent and self._recent[0][0] < horizon:
                self._recent.popleft()

    def _resend_recent(self) -> None:
        """After a reconnect, send again what the broker acknowledged just before the connection dropped."""
        horizon = self._down_at - self.config.resend_acked_s
        rows = [row for at, row in self._recent if at >= horizon]
        self._recent.clear()
        for row in rows:
            self._client.publish(row.topic, row.payload, qos=1)  # acknowledgement not tracked: already deleted
        if rows:
            log.info("re-sent %d predictions acknowledged just before the connection dropped", len(rows))

    def _hand_over(self) -> None:
        if self._barrier:
            if self._inflight:
                return  # paho is re-sending older rows; newer ones must not overtake them
            self._barrier = False
        room = self._window - len(self._inflight)
        while room > 0 and self._connected:
            rows = self._outbox.pending(self._sent_upto, min(room, 256))
            if not rows:
                return
            for row in rows:
                try:
                    info = self._client.publish(row.topic, row.payload, qos=1)
                except ValueError as exc:  # a topic paho refuses (too long, a wildcard): never deliverable
                    self._refuse_row(row, exc)
                    continue
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # paho's mid space is busy: try again next round
                    return
                self._inflight[info.mid] = row
                self._sent_upto = row.id
            room -= len(rows)

    def _refuse_row(self, row: Row, exc: ValueError) -> None:
        """Drop a row no broker will take (written by an older edgernn that did not bound stream names), so
        the rows behind it are delivered instead of waiting on it forever; counted as rejected."""
        self._rejected += 1
        self._outbox.count_dropped(1)
        self._outbox.ack([row])
        self._sent_upto = row.id
        log.warning("dropped %s seq %d: the MQTT client refuses its topic (%s)", shown(row.topic), row.seq, exc)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _status_body(self, state: str) -> bytes:
        figures = {
            **self.outbox_figures(),
            "bytes": self._outbox.bytes,
            "oldest_s": round(self._outbox.oldest_age(), 3),
            "rejected": self._rejected,
        }
        return status_payload(state, self.device, self._counters, figures)

    def _send_status(self, state: str) -> None:
        self._last_status = time.monotonic()
        self._client.publish(self._status_topic, self._status_body(state), qos=1, retain=True)

    def _send(self, messages: list[Message]) -> list[mqtt.MQTTMessageInfo]:
        return [self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in messages]
