"""A fleet's publishing: every device's own publisher and outbox, the seqs it published, what got delivered.

Every device has its own outbox, which outlives its reboots: in RAM (`MemoryOutbox`) with the in-memory
broker, the SQLite file in its own state directory with a real one. With the in-memory broker, what it
delivered is counted here by (device, seq); with a real one an independent subscriber counts it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.publish import MemoryPublisher, OutboxConfig, Publisher, open_publisher
from edge_runtime.publish.memory_outbox import MemoryOutbox
from edge_runtime.publish.tracker import SeqTracker
from edge_runtime.stream.prediction import Publishable

# A simulated device's SQLite outbox: the host's disk is not the device's SD card (no fsync), and a group is
# committed every 500 ms instead of 20 ms, so a thousand devices make 2 commits a second each rather than one
# per prediction (the commits were the largest cost of a real-broker fleet, measured; 500 ms instead of 250 ms
# left fewer late ticks with 1,000 devices). It hands predictions to paho up to 0.5 s later; nothing else
# changes (a simulated power cut closes the outbox).
SIM_OUTBOX = OutboxConfig(synchronous="normal", group_interval=0.5, reserve_bytes=0)


class FleetDelivery:
    def __init__(self, ids: list[str], workdir: Path) -> None:
        n = self.n = len(ids)
        self.ids = ids
        self.workdir = workdir
        self.pubs: list[Publisher | None] = []
        self.stores: list[MemoryOutbox] = []  # in-memory broker: each device's outbox, kept across its reboots
        self.online = True
        self.memory = True  # in-memory publishers (until open says otherwise)
        self.now = 0.0  # simulated time of the last tick: when the in-memory broker delivered
        self.published = np.zeros(n, np.int64)
        self.first_seq = np.zeros(n, np.int64)
        self.last_seq = np.zeros(n, np.int64)
        self._peak = [0] * n  # outbox depth right after each publish, the most it reached (a list: per-item speed)
        self.outbox_left = np.zeros(n, np.int64)  # unacknowledged when the run ended
        self.outbox_dropped = np.zeros(n, np.int64)  # deleted by the outbox bounds
        self.delivered = SeqTracker()
        self._pub_args: tuple[str | None, str, Any] = (None, "", None)

    # --- publishers -----------------------------------------------------------------------------------

    def open(self, url: str | None, prefix: str, config: Any = None) -> None:
        self.memory = url is None
        self._pub_args = (url, prefix, config)
        if self.memory:
            self.stores = [MemoryOutbox(OutboxConfig()) for _ in range(self.n)]
        self.pubs = [self._open_pub(i) for i in range(self.n)]

    def _open_pub(self, i: int) -> Publisher:
        url, prefix, config = self._pub_args
        dev = self.ids[i]
        if url is None:
            pub = MemoryPublisher(dev, prefix=prefix, store=self.stores[i])
            pub.online = self.online
            return pub
        cfg = replace(config, client_id=f"edgernn-sim-{dev}") if config is not None else None
        return open_publisher(url, dev, prefix=prefix, state_dir=self.workdir / dev, outbox=SIM_OUTBOX, config=cfg)

    def power_off(self, d: int) -> None:
        """The device's publisher goes without waiting for acknowledgements (the outbox on disk keeps what is
        unacknowledged), counting what the in-memory broker took on the way down."""
        pub = self.pubs[d]
        if pub is not None:
            self._drain_one(d, pub, None)
            self.outbox_dropped[d] = max(int(self.outbox_dropped[d]), pub.dropped)
            pub.close(timeout=0)
            self._drain_one(d, pub, None)
            self.pubs[d] = None

    def boot(self, d: int) -> None:
        """A new publisher on the device's outbox."""
        self.pubs[d] = self._open_pub(d)

    def set_online(self, online: bool) -> None:
        """In-memory broker outage: every publisher queues in its outbox until the broker is back."""
        self.online = online
        for pub in self.pubs:
            if isinstance(pub, MemoryPublisher):
                pub.online = online

    # --- publishing -----------------------------------------------------------------------------------

    def publish(self, devs: np.ndarray, items: list[Publishable], distinct: bool = True) -> None:
        """Each item through its device's publisher; `distinct`: one tick (each device once), else a block
        (entries tick-major: a device's items go to its publisher together, in order)."""
        pubs, peak = self.pubs, self._peak
        if distinct:
            seqs = [pubs[d].publish(pred) for d, pred in zip(devs.tolist(), items, strict=True)]
            s = np.asarray(seqs, np.int64)
            self.first_seq[devs] = np.where(self.first_seq[devs] == 0, s, self.first_seq[devs])
            self.last_seq[devs] = s
            self.published[devs] += 1
        else:
            n = self.n
            if len(devs) % n == 0 and len(devs) and bool((devs.reshape(-1, n) == np.arange(n)).all()):
                groups = {d: items[d::n] for d in range(n)}  # every device at every tick: strided
            else:
                groups = {}
                for d, item in zip(devs.tolist(), items, strict=True):
                    groups.setdefault(d, []).append(item)
            for d, group in groups.items():
                seqs = pubs[d].publish_many(group)  # type: ignore[union-attr]
                if self.first_seq[d] == 0:
                    self.first_seq[d] = seqs[0]
                self.last_seq[d] = seqs[-1]
                self.published[d] += len(seqs)
        if not (self.memory and self.online):  # else every outbox was just emptied into the in-memory broker
            for d in np.unique(devs).tolist() if not distinct else devs.tolist():
                depth = pubs[d].depth
                if depth > peak[d]:
                    peak[d] = depth

    # --- delivery (in-memory) and figures -------------------------------------------------------------

    def drain_memory(self, t: float | None) -> int:
        """Count what the in-memory broker delivered since the last call, by (device, seq), in the simulated
        second t (None: the last tick's); returns how many."""
        n = 0
        for d, pub in enumerate(self.pubs):
            if isinstance(pub, MemoryPublisher):
                n += self._drain_one(d, pub, t)
        return n

    def _drain_one(self, d: int, pub: Publisher, t: float | None) -> int:
        if not isinstance(pub, MemoryPublisher) or not pub.messages:
            return 0
        seqs = pub.delivered_seqs  # the seqs the publisher gave and the in-memory broker took, in order
        pub.messages.clear()
        pub.delivered_seqs = []
        self.delivered.add_many(self.ids[d], seqs, int(self.now if t is None else t))
        return len(seqs)

    def sample_outbox(self) -> int:
        """Predictions waiting in every outbox of the fleet now."""
        return sum(pub.depth for pub in self.pubs if pub is not None)

    def flush(self, timeout: float) -> bool:
        ok = True
        for pub in self.pubs:
            if pub is not None:
                ok = pub.flush(timeout) and ok
        return ok

    def close(self) -> None:
        """Close every publisher, counting what the in-memory broker still delivers and what is left."""
        for d, pub in enumerate(self.pubs):
            if pub is not None:
                self._drain_one(d, pub, None)
                self.outbox_left[d] = pub.depth
                self.outbox_dropped[d] = max(int(self.outbox_dropped[d]), pub.dropped)
                pub.close(timeout=1.0)
                self._drain_one(d, pub, None)
                self.pubs[d] = None

    def fields(self) -> dict[str, Any]:
        """Copies for `FleetResult`; what was delivered only with the in-memory broker (else the subscriber's)."""
        memory = self.memory
        return {
            "published": self.published.copy(),
            "first_seq": self.first_seq.copy(),
            "last_seq": self.last_seq.copy(),
            "outbox_peak": np.asarray(self._peak, np.int64),
            "outbox_left": self.outbox_left.copy(),
            "outbox_dropped": self.outbox_dropped.copy(),
            "delivered_seqs": self.delivered.seqs() if memory else None,
            "delivered_dups": self.delivered.duplicates_by_device() if memory else None,
            "delivered_per_second": np.asarray(self.delivered.per_second, np.int64) if memory else None,
        }
