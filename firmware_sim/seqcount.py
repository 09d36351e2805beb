"""Counting delivered predictions by (device, seq): one bit per seq, duplicates and deliveries per second.

One home for the counter and the payload's seq pattern: the independent subscriber (paho or mosquitto_sub
feed) and the simulator's in-memory broker count with the same code, so their figures mean the same.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SEQ = re.compile(rb'"seq":\s*(\d+)')  # a prediction payload's seq, without parsing the JSON


class SeqCounter:
    """Distinct (device, seq) pairs as one bitmap per device; duplicates; deliveries per second."""

    def __init__(self) -> None:
        self.bits: dict[str, bytearray] = {}
        self.dups: dict[str, int] = {}
        self.per_second: list[int] = []
        self.received = 0
        self.distinct = 0
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def add(self, device: str, seq: int, second: int | None = None) -> None:
        """One delivery; `second` is when (default: wall-clock seconds since this counter started)."""
        self.add_many(device, (seq,), second)

    def add_many(self, device: str, seqs: Iterable[int], second: int | None = None) -> None:
        """Deliveries of one device at one time (the in-memory broker hands over a device's batch at once)."""
        with self.lock:
            bits = self.bits.get(device)
            if bits is None:
                bits = self.bits[device] = bytearray(1024)
                self.dups[device] = 0
            n = dups = 0
            for seq in seqs:
                byte, bit = divmod(seq, 8)
                if byte >= len(bits):
                    bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
                if bits[byte] >> bit & 1:
                    dups += 1
                else:
                    bits[byte] |= 1 << bit
                n += 1
            if not n:
                return
            self.received += n
            self.distinct += n - dups
            self.dups[device] += dups
            sec = int(time.monotonic() - self.t0) if second is None else second
            if sec >= len(self.per_second):
                self.per_second.extend([0] * (sec + 1 - len(self.per_second)))
            self.per_second[sec] += n

    def seqs(self) -> dict[str, np.ndarray]:
        """device -> sorted distinct seqs received."""
        with self.lock:
            return {
                d: np.flatnonzero(np.unpackbits(np.frombuffer(bytes(b), np.uint8), bitorder="little"))
                for d, b in self.bits.items()
            }

    def save(self, path: Path) -> None:
        with self.lock:
            names = sorted(self.bits)
            blobs = [np.frombuffer(bytes(self.bits[n]), np.uint8) for n in names]
            offsets = np.cumsum([0, *[len(b) for b in blobs]])
            np.savez(
                path,
                devices=np.asarray(names, dtype=str),
                bits=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
                offsets=offsets,
                dups=np.asarray([self.dups[n] for n in names], np.int64),
                per_second=np.asarray(self.per_second, np.int64),
            )
