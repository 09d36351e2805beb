"""The state Home Assistant reads: the latest prediction per stream, retained, at a bounded rate.

A 25 Hz model would otherwise write 25 states per second per entity into HA's recorder. `StateThrottle`
decides, per published prediction, whether `<prefix>/<stream>/state` gets it now: the first one, one whose
label or anomaly verdict changed, or one at least `interval` seconds after the last sent. A prediction held
back is kept as the stream's pending state and sent by `due()` once its time comes (the publisher calls it
with each status, every second), so HA never stays behind by more than about `interval` + 1 s. The full
stream on `<prefix>/<stream>/prediction` is untouched: every prediction still goes through the outbox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from edge_runtime.publish.base import Message
from edge_runtime.stream.prediction import Publishable


def state_topic(prefix: str, stream: str) -> str:
    return f"{prefix}/{stream}/state"


def _verdict(pred: Publishable) -> tuple[object, object]:
    """What HA shows as a change: the label and the anomaly verdict (None when this prediction has none).

    Bulk-rendered predictions (`RenderedPrediction`) carry no fields, only bytes: they are paced by time."""
    return getattr(pred, "label", None), getattr(pred, "is_anomaly", None)


class StateThrottle:
    def __init__(self, prefix: str, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix, self.interval, self.clock = prefix, interval, clock
        self._last: dict[str, tuple[float, tuple[object, object]]] = {}  # stream -> (sent at, verdict)
        self._pending: dict[str, tuple[Publishable, int]] = {}  # stream -> latest prediction held back, its seq
        self._lock = threading.Lock()  # publish (device loop) and status (the same, or a timer) may overlap

    def offer(self, pred: Publishable, seq: int) -> Message | None:
        """The state message to send now for this prediction (just given `seq`), or None (held back)."""
        stream, now = pred.stream, self.clock()
        label, anomalous = _verdict(pred)
        with self._lock:
            sent_at, (last_label, last_anomalous) = self._last.get(stream, (-1e18, (None, None)))
            changed = (label is not None and label != last_label) or (
                anomalous is not None and anomalous != last_anomalous
            )
            due = now - sent_at >= self.interval
            if not (changed or due):
                self._pending[stream] = (pred, seq)  # serialised only if it is still the latest when due
                return None
            self._pending.pop(stream, None)
            # a missing field (a held reading, warm-up) keeps the last verdict: it is no change
            self._last[stream] = (now, (label if label is not None else last_label, anomalous
                                        if anomalous is not None else last_anomalous))  # fmt: skip
        return self._message(pred, seq)

    def due(self, *, all_pending: bool = False) -> list[Message]:
        """Held-back states whose interval has passed (all of them at close), oldest stream first."""
        now = self.clock()
        out = []
        with self._lock:
            for stream in list(self._pending):
                sent_at, verdict = self._last[stream]
                if all_pending or now - sent_at >= self.interval:
                    out.append(self._message(*self._pending.pop(stream)))
                    self._last[stream] = (now, verdict)
        return out

    def _message(self, pred: Publishable, seq: int) -> Message:
        # Serialised a second time (the outbox has its own copy): about once per interval per stream.
        return Message(state_topic(self.prefix, pred.stream), pred.payload(seq), qos=1, retain=True)
