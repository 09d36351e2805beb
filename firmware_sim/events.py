"""Connection events of a simulated fleet, counted per interval instead of printed one line per device.

A device's MQTT layer (`edge_runtime.publish`) logs a warning when it loses or cannot reach the broker. That is
right for one Pi; for 200 simulated devices a two-minute outage printed 400 lines. While a simulation runs,
`EventCounter` takes those records instead, groups them by what happened (the message up to its details),
and the progress output prints one line per interval: `lost the connection to 127.0.0.1:1883 x200`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

MQTT_LOGGER = "edge_runtime.publish"
# how often, in wall seconds, progress lines (without a terminal) and connection-event counts are printed
PROGRESS_EVERY_S = 30.0


class EventCounter(logging.Handler):
    """Counts the MQTT layer's records by kind; `take()` returns the counts since the last take."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._counts: Counter[str] = Counter()
        self._guard = threading.Lock()  # paho callbacks log from their own threads

    def emit(self, record: logging.LogRecord) -> None:
        label = _label(record)
        with self._guard:
            self._counts[label] += 1

    def take(self) -> dict[str, int]:
        with self._guard:
            counts, self._counts = dict(self._counts), Counter()
        return counts


def _label(record: logging.LogRecord) -> str:
    """What happened, without the per-device details: the message up to its first ' (' or ';'."""
    head = str(record.msg).split(";")[0].split(" (")[0]
    args = record.args if isinstance(record.args, tuple) else ()
    try:
        return head % args[: head.count("%")]
    except (TypeError, ValueError):
        return head


def summary_line(counts: dict[str, int], interval: str) -> str:
    """'connection events in the last 30 s: lost the connection to 127.0.0.1:1883 x200' ('' when none)."""
    if not counts:
        return ""
    parts = [f"{label} x{n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return f"connection events in {interval}: " + "; ".join(parts)


class Counting:
    """Within `with Counting() as counter:`, the MQTT layer's warnings are counted, not printed."""

    def __init__(self) -> None:
        self.counter = EventCounter()
        self._logger = logging.getLogger(MQTT_LOGGER)
        self._propagate = True

    def start(self) -> EventCounter:
        self._propagate = self._logger.propagate
        self._logger.addHandler(self.counter)
        self._logger.propagate = False
        return self.counter

    def stop(self) -> None:
        self._logger.removeHandler(self.counter)
        self._logger.propagate = self._propagate

    def __enter__(self) -> EventCounter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
