"""Count what a subscriber received by (device, seq): unique, duplicates, gaps (standard library only).

    t = SeqTracker()
    t.add("dev1", 1); t.add("dev1", 3); t.add("dev1", 3)   # -> True, True, False (a duplicate)
    t.report()["dev1"]   # {"unique": 2, "duplicates": 1, "missing": 1, "gaps": [[2, 2]], "first": 1, "last": 3}

Memory stays bounded on long runs: below a moving floor every seq is either seen or recorded as a gap; a seq
more than `reorder_window` behind the newest is no longer waited for (it is a gap, or late if it arrives).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    def add(self, device: str, seq: int) -> bool:
        """True the first time (device, seq) is seen; False for a duplicate."""
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
        for device, s in sorted(self._streams.items()):
            gaps = [list(g) for g in s.gaps]
            prev = s.floor
            for seq in sorted(s.above):  # still waiting for these holes
                if seq > prev + 1:
                    gaps.append([prev + 1, seq - 1])
                prev = seq
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
        return sum(s.unique for s in self._streams.values())

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self._streams.values())
