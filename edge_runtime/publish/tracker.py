"""Count what a subscriber received by (device, seq): unique, duplicates, gaps, deliveries per second.

The one seq-gap counter: `edgernn listen`, the simulator's independent subscriber (paho or mosquitto_sub feed)
and its in-memory broker all count with it, so their figures mean the same.

    t = SeqTracker()
    t.add("dev1", 1); t.add("dev1", 3); t.add("dev1", 3)   # -> True, True, False (a duplicate)
    t.report()["dev1"]   # {"unique": 2, "duplicates": 1, "missing": 1, "gaps": [[2, 2]], "first": 1, "last": 3}

Memory stays bounded on long runs: below a moving floor every seq is either seen or recorded as a gap; a seq
more than `reorder_window` behind the newest is no longer waited for (it is a gap, or late if it arrives).
A run of seqs that continues a device's stream in order (what a broker delivers almost always) moves the
floor in one step. Thread-safe: a network thread adds while another reads the figures.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEQ = re.compile(rb'"seq":\s*(\d+)')  # a prediction payload's seq, read off the wire without parsing the JSON


@dataclass
class _Stream:
    first: int
    floor: int  # every seq in [first, floor] has been seen or recorded in gaps
    above: set[int] = field(default_factory=set)  # seen seqs > floor
    last: int = 0
    unique: int = 0
    duplicates: int = 0
    late: int = 0  # arrived after it had been given up as a gap
    gaps: list[list[int]] = field(default_factory=list)  # [low, high] inclusive, closed ranges


class SeqTracker:
    def __init__(self, reorder_window: int = 100_000) -> None:
        self.reorder_window = reorder_window
        self._streams: dict[str, _Stream] = {}
        self.received = 0  # deliveries, duplicates included
        self.per_second: list[int] = []  # deliveries per second since this tracker started (or as told)
        self.t0 = time.monotonic()  # monotonic start: per_second counts from here (the simulator reports it)
        self._lock = threading.Lock()

    def add(self, device: str, seq: int, second: int | None = None) -> bool:
        """One delivery: True the first time (device, seq) is seen; False for a duplicate. `second`: when
        (default: wall-clock seconds since this tracker started)."""
        with self._lock:
            s = self._streams.get(device)
            if s is not None and seq == s.floor + 1 and not s.above:  # the usual case: the next one in order
                s.floor = s.last = seq
                s.unique += 1
                new = True
            else:
                new = self._add(device, seq)
            self.received += 1
            self._count_second(1, second)
            return new

    def add_many(self, device: str, seqs: Sequence[int], second: int | None = None) -> int:
        """Deliveries of one device at one time, in order (a broker hands over a batch); returns how many
        were new."""
        if not seqs:
            return 0
        with self._lock:
            s = self._streams.get(device)
            a = seqs[0]
            if s is not None and a == s.floor + 1 and not s.above and _consecutive(seqs):  # the usual case
                s.floor = s.last = a + len(seqs) - 1
                s.unique += len(seqs)
                new = len(seqs)
            else:
                new = sum(self._add(device, q) for q in seqs)
            self.received += len(seqs)
            self._count_second(len(seqs), second)
            return new

    def _count_second(self, n: int, second: int | None) -> None:
        sec = int(time.monotonic() - self.t0) if second is None else second
        ps = self.per_second
        if sec >= len(ps):
            ps.extend([0] * (sec + 1 - len(ps)))
        ps[sec] += n

    def _add(self, device: str, seq: int) -> bool:
        s = self._streams.get(device)
        if s is None:
            self._streams[device] = _Stream(first=seq, floor=seq, last=seq, unique=1)
            return True
        if seq < s.first:  # older than anything seen: it arrived out of order; the range grows downwards
            if seq + 1 <= s.first - 1:
                s.gaps.insert(0, [seq + 1, s.first - 1])
            s.first = seq
            s.unique += 1
            return True
        if seq <= s.floor:
            if self._fill_gap(s, seq):
                s.unique += 1
                s.late += 1
                return True
            s.duplicates += 1
            return False
        if seq in s.above:
            s.duplicates += 1
            return False
        s.above.add(seq)
        s.unique += 1
        s.last = max(s.last, seq)
        self._advance(s)
        if s.last - s.floor > self.reorder_window:  # stop waiting for very old missing seqs
            self._give_up(s, s.last - self.reorder_window)
        return True

    def _give_up(self, s: _Stream, upto: int) -> None:
        """Record every unseen seq in (floor, upto] as a gap and move the floor there."""
        for seq in sorted(x for x in s.above if x <= upto):
            if seq > s.floor + 1:
                self._add_gap(s, s.floor + 1, seq - 1)
            s.floor = seq
            s.above.discard(seq)
        if upto > s.floor:
            self._add_gap(s, s.floor + 1, upto)
            s.floor = upto
        self._advance(s)

    @staticmethod
    def _advance(s: _Stream) -> None:
        """Move the floor over the contiguous run of seen seqs just above it."""
        while s.floor + 1 in s.above:
            s.floor += 1
            s.above.discard(s.floor)

    @staticmethod
    def _add_gap(s: _Stream, low: int, high: int) -> None:
        if s.gaps and s.gaps[-1][1] == low - 1:
            s.gaps[-1][1] = high
        else:
            s.gaps.append([low, high])

    @staticmethod
    def _fill_gap(s: _Stream, seq: int) -> bool:
        for i, (low, high) in enumerate(s.gaps):
            if low <= seq <= high:
                parts = [p for p in ([low, seq - 1], [seq + 1, high]) if p[0] <= p[1]]
                s.gaps[i : i + 1] = parts
                return True
        return False

    def report(self) -> dict[str, dict[str, Any]]:
        """Per device: unique, duplicates, missing, gaps (closed ranges), first, last, late."""
        out = {}
        with self._lock:
            streams = sorted(self._streams.items())
        for device, s in streams:
            gaps = _gaps(s)
            out[device] = {
                "unique": s.unique,
                "duplicates": s.duplicates,
                "missing": sum(high - low + 1 for low, high in gaps),
                "gaps": gaps,
                "first": s.first,
                "last": s.last,
                "late": s.late,
            }
        return out

    @property
    def unique(self) -> int:
        """Distinct (device, seq) received."""
        return sum(s.unique for s in list(self._streams.values()))

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in list(self._streams.values()))

    def duplicates_by_device(self) -> dict[str, int]:
        with self._lock:
            return {d: s.duplicates for d, s in self._streams.items()}

    def seqs(self) -> dict[str, np.ndarray]:
        """device -> sorted distinct seqs received, (n,) int64."""
        with self._lock:
            streams = list(self._streams.items())
            return {d: _seen(s) for d, s in streams}

    def save(self, path: Path) -> None:
        """Write what was received (one bit per seq, duplicates, per second) for `firmware_sim.subscriber`."""
        seqs, dups = self.seqs(), self.duplicates_by_device()
        names = sorted(seqs)
        blobs = []
        for n in names:
            bits = np.zeros(int(seqs[n][-1]) + 1 if len(seqs[n]) else 0, bool)  # (last + 1,) bit s: seq s arrived
            bits[seqs[n]] = True
            blobs.append(np.packbits(bits, bitorder="little"))
        np.savez(
            path,
            devices=np.asarray(names, dtype=str),
            bits=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8),
            offsets=np.cumsum([0, *[len(b) for b in blobs]]),
            dups=np.asarray([dups[n] for n in names], np.int64),
            per_second=np.asarray(self.per_second, np.int64),
        )


def _consecutive(seqs: Sequence[int]) -> bool:
    a = seqs[0]
    return seqs[-1] - a == len(seqs) - 1 and list(seqs) == list(range(a, a + len(seqs)))


def _gaps(s: _Stream) -> list[list[int]]:
    """Closed ranges not received in [first, last]: those given up, and those still waited for."""
    gaps = [list(g) for g in s.gaps]
    prev = s.floor
    for seq in sorted(s.above):  # still waiting for these holes
        if seq > prev + 1:
            gaps.append([prev + 1, seq - 1])
        prev = seq
    return gaps


def _seen(s: _Stream) -> np.ndarray:
    seen = np.ones(s.last - s.first + 1, bool)  # (last - first + 1,)
    for low, high in _gaps(s):
        seen[low - s.first : high - s.first + 1] = False
    return np.flatnonzero(seen) + s.first
