"""What a fleet (or a shard of it, in a worker process) hands to the report: plain, picklable arrays.

Per-device figures are arrays indexed like `ids`; shards of one fleet hold consecutive device ranges, so
merging is concatenation in shard order (sums for the fleet-wide counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from firmware_sim.latency import HostTiming
from firmware_sim.metrics import AnomalyTracker, ForecastTracker
from firmware_sim.profiles import DeviceProfile

PER_DEVICE = (
    "produced",
    "predictions",
    "not_sampled",
    "deadline_misses",
    "published",
    "first_seq",
    "last_seq",
    "outbox_peak",
    "outbox_left",
    "outbox_dropped",
    "reboots",
    "latency_counts",
    "confusion",
)
_TRACKER = (
    "prev_truth",
    "prev_alarm",
    "start",
    "detected",
    "episodes",
    "missed",
    "false_alarms",
    "fault_alarms",
    "confusion",
    "first_onset",
)
_FORECASTS = ("fc", "base", "made", "err", "base_err", "count")


@dataclass
class FleetResult:
    name: str
    bundle: str
    task: str
    signal_kind: str
    rate: float
    labels: list[str]
    scored: bool
    threshold: float | None
    profile: DeviceProfile
    artifact: str
    backend: str
    host: HostTiming | None
    factor: float
    modelled_median_us: float | None
    footprint: dict[str, Any]
    warnings: list[str]
    ids: list[str]
    produced: np.ndarray
    predictions: np.ndarray
    not_sampled: np.ndarray
    deadline_misses: np.ndarray
    published: np.ndarray
    first_seq: np.ndarray
    last_seq: np.ndarray
    outbox_peak: np.ndarray
    outbox_left: np.ndarray
    outbox_dropped: np.ndarray
    reboots: np.ndarray
    latency_counts: np.ndarray  # (D, bins)
    confusion: np.ndarray  # (D, L, L)
    anomaly: AnomalyTracker
    forecasts: ForecastTracker | None = None  # forecast bundles on a signal that gives their targets
    alarm_rule: str = ""  # anomaly bundles: how an alarm is raised from the published scores
    dropped: dict[str, np.ndarray] = field(default_factory=dict)  # reason -> (D,)
    flagged: dict[str, np.ndarray] = field(default_factory=dict)
    unattributed: dict[str, int] = field(default_factory=dict)
    restores: dict[str, int] = field(default_factory=dict)
    after_boot: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    runtime_readings: int = 0
    runtime_predictions: int = 0
    trace: dict[str, list[float]] = field(default_factory=dict)  # the fleet's first device, if held here
    # in-memory broker only: what it delivered, by (device, seq), and per simulated second
    delivered_seqs: dict[str, np.ndarray] | None = None
    delivered_dups: dict[str, int] | None = None
    delivered_per_second: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def period(self) -> float:
        return 1.0 / self.rate

    @classmethod
    def merge(cls, parts: list[FleetResult]) -> FleetResult:
        """One fleet from its shards, in device order."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        out = replace(first, ids=[d for p in parts for d in p.ids])
        for name in PER_DEVICE:
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
        for book in ("dropped", "flagged"):
            reasons = sorted({r for p in parts for r in getattr(p, book)})
            setattr(
                out,
                book,
                {r: np.concatenate([getattr(p, book).get(r, np.zeros(p.n, np.int64)) for p in parts]) for r in reasons},
            )
        for counts in ("unattributed", "restores", "after_boot", "injected"):
            merged: dict[str, int] = {}
            for p in parts:
                for k, v in getattr(p, counts).items():
                    merged[k] = merged.get(k, 0) + int(v)
            setattr(out, counts, merged)
        out.runtime_readings = sum(p.runtime_readings for p in parts)
        out.runtime_predictions = sum(p.runtime_predictions for p in parts)
        out.anomaly = _merge_trackers([p.anomaly for p in parts])
        out.forecasts = _merge_forecasts([p.forecasts for p in parts])
        out.trace = next((p.trace for p in parts if p.trace and p.trace.get("t")), first.trace)
        if first.delivered_seqs is not None:
            out.delivered_seqs = {d: s for p in parts for d, s in (p.delivered_seqs or {}).items()}
            out.delivered_dups = {d: n for p in parts for d, n in (p.delivered_dups or {}).items()}
            out.delivered_per_second = _sum_ragged([p.delivered_per_second for p in parts])
        # the host measurement of the first shard stands for all (same bundle, same host)
        return out


def _merge_trackers(trackers: list[AnomalyTracker]) -> AnomalyTracker:
    out = AnomalyTracker(sum(len(t.start) for t in trackers))
    for name in _TRACKER:
        setattr(out, name, np.concatenate([getattr(t, name) for t in trackers]))
    out.delays = [d for t in trackers for d in t.delays]
    return out


def _merge_forecasts(trackers: list[ForecastTracker | None]) -> ForecastTracker | None:
    if any(t is None for t in trackers):
        return None
    ts = [t for t in trackers if t is not None]
    out = ForecastTracker(0, ts[0].h, ts[0].nt)
    for name in _FORECASTS:
        setattr(out, name, np.concatenate([getattr(t, name) for t in ts]))
    return out


def _sum_ragged(arrays: list[np.ndarray | None]) -> np.ndarray:
    arrays_ = [np.asarray(a) for a in arrays if a is not None]
    if not arrays_:
        return np.zeros(0, np.int64)
    out = np.zeros(max(len(a) for a in arrays_), np.int64)
    for a in arrays_:
        out[: len(a)] += a
    return out
