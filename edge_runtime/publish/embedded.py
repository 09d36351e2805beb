"""An MQTT broker inside this process, for the demo and for trying things without installing Mosquitto.

    with embedded_broker() as url:          # "mqtt://127.0.0.1:PORT"
        pub = open_publisher(url, "dev1")

amqtt (pure Python, asyncio) runs on its own event loop in a background thread. It speaks MQTT 3.1.1 only
and keeps nothing on disk: fine for a demo; Mosquitto (deploy/mosquitto.conf) is the broker everywhere else.

On a busy machine a subscriber may acknowledge a QoS 1 message (PUBACK) more than 5 s after amqtt sent it.
amqtt then stops waiting (the message was sent; it is not sent again) and logs a warning plus a traceback
for the task. Here that is one counted event (`BrokerEvents.late_pubacks`): the first says so in one line,
the count comes once more when the broker stops.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edgernn.errors import ConfigError, PublishError

log = logging.getLogger("edge_runtime.publish")


class BrokerEvents(logging.Filter):
    """What amqtt would report as a warning and a traceback, counted instead (a filter on its loggers)."""

    LOGGERS = ("amqtt.mqtt.protocol.handler", "amqtt.broker")  # filters see only their own logger's records

    def __init__(self) -> None:
        super().__init__()
        self.late_pubacks = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "amqtt.mqtt.protocol.handler" and "Timeout waiting for PUBACK" in record.getMessage():
            self.late_pubacks += 1
            if self.late_pubacks == 1:
                log.warning(
                    "embedded broker: a subscriber acknowledged a message more than 5 s after it was sent (a busy "
                    "machine); amqtt stopped waiting for it, the message was delivered once; counted from now on"
                )
            return False
        exc = record.exc_info[1] if record.exc_info else None
        # the broadcast task that timed out, logged again with its traceback by the broker: counted above
        return not (record.name == "amqtt.broker" and isinstance(exc, TimeoutError) and "PUBACK" in str(exc))

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        if self.late_pubacks:
            log.warning("embedded broker: %d message(s) acknowledged late by a subscriber (> 5 s)", self.late_pubacks)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded_broker(
    host: str = "127.0.0.1", port: int = 0, *, timeout: float = 10.0, events: BrokerEvents | None = None
) -> Iterator[str]:
    """Start amqtt on host:port (0: a free port); yields the broker URL; stops it on exit. `events`: where
    late acknowledgements are counted (default: a private counter, reported when the broker stops)."""
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise ConfigError("the embedded broker needs amqtt: pip install 'edgernn[sim]', or give a broker URL") from exc
    port = port or _free_port(host)
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only anonymous auth: no event/packet loggers, no $SYS topics.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        broker = Broker(config, loop=loop)
        await broker.start()
        holder["broker"] = broker

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller below
            holder["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    for name in ("amqtt", "transitions"):  # amqtt logs every connection at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    events = events if events is not None else BrokerEvents()
    events.attach()
    thread = threading.Thread(target=run, name="edgernn-embedded-broker", daemon=True)
    thread.start()
    if not started.wait(timeout) or "error" in holder:
        loop.call_soon_threadsafe(loop.stop)
        events.detach()
        cause = holder.get("error", "timed out")
        raise PublishError(f"the embedded MQTT broker did not start on {host}:{port}: {cause}")
    url = f"mqtt://{host}:{port}"
    log.info("embedded MQTT broker (amqtt, MQTT 3.1.1, in memory) on %s", url)
    try:
        yield url
    finally:
        try:
            asyncio.run_coroutine_threadsafe(holder["broker"].shutdown(), loop).result(timeout)
        except Exception as exc:  # shutting down a demo broker must not hide the real error
            log.warning("embedded broker did not shut down cleanly: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        events.detach()  # after the shutdown, which logs the timed-out tasks once more
