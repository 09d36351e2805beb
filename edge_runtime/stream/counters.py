"""`Counters`: what the stepping paths count, each figure `Predictor.counters` reports kept in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_runtime.stream.guard import REASONS


@dataclass
class Counters:
    readings: int = 0
    predictions: int = 0
    skipped: int = 0  # readings that made no prediction by a rule or policy
    held_back: int = 0  # predictions not published while warming up (`warmup = "hold"`)
    stale: int = 0  # streams whose checkpoint was too old or unreadable: started fresh
    checkpoints: int = 0
    bad: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))  # by reason
    disk: dict[str, int] = field(default_factory=dict)  # state_unreadable, state_not_saved

    def refuse(self, reason: str) -> None:
        """A reading dropped for a reason no policy can change (bad time, bad stream name): counted."""
        self.bad[reason] += 1
        self.skipped += 1
