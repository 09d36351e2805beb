"""The simulation report: per device, per fleet and for the whole fleet, as JSON, a terminal summary and plots.

Accounting, per device (exact, and checked: `accounting.balanced`):

    readings produced = predictions + readings that made none, by reason (dropped)
    predictions = published (every prediction goes through the device's publisher)
    published = delivered (distinct (device, seq) the broker delivered to an independent subscriber,
                or the in-memory broker delivered) + missing

`flagged` counts readings the runtime questioned but still predicted on (e.g. a NaN held at the last good
value), by reason; `not_sampled` the readings a dropout or a powered-off device never took.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from firmware_sim.metrics import max_of, percentiles_of
from firmware_sim.tasks import SIM_TASKS, sim_task_for
from firmware_sim.tasks.base import pct
from firmware_sim.timeparse import format_duration

if TYPE_CHECKING:
    from firmware_sim.results import FleetResult
    from firmware_sim.run_view import RunView
    from firmware_sim.runner import Series
    from firmware_sim.subscriber import Delivered


@dataclass
class Report:
    data: dict[str, Any]
    series: dict[str, list[float]]  # per simulated second: t, produced, delivered, outbox
    traces: dict[str, dict[str, Any]]  # per fleet: the sample device's truth and predictions
    latency_counts: dict[str, np.ndarray]  # per fleet: latency histogram counts
    outages: list[tuple[float, float, str]]

    @property
    def fleet(self) -> dict[str, Any]:
        return dict(self.data["fleet"])

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self.data["devices"][device_id])

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, default=_jsonable)

    def write(self, out_dir: str | Path) -> list[Path]:
        """report.json and summary.txt; returns the paths written (the plots: `plots.write_plots`)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "report.json", out / "summary.txt"]
        paths[0].write_text(self.to_json() + "\n")
        paths[1].write_text(self.summary() + "\n")
        return paths

    def summary(self) -> str:
        return format_summary(self.data)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _delivery(f: FleetResult, delivered: Delivered | None) -> tuple[np.ndarray, np.ndarray]:
    """Per device (D,): distinct predictions delivered among those published, and duplicates."""
    if delivered is None:
        seqs, dups = f.delivered_seqs or {}, f.delivered_dups or {}
    else:
        seqs, dups = delivered.seqs, delivered.duplicates
    got = np.zeros(f.n, np.int64)
    dup = np.zeros(f.n, np.int64)
    for i, dev in enumerate(f.ids):
        if f.published[i] == 0:
            continue
        s = seqs.get(dev, np.zeros(0, np.int64))
        lo, hi = int(f.first_seq[i]), int(f.last_seq[i])
        got[i] = int(((s >= lo) & (s <= hi)).sum())
        dup[i] = dups.get(dev, 0)
    return got, dup


def _reasons(book: dict[str, np.ndarray], sel: slice | int) -> dict[str, int]:
    return {r: int(a[sel].sum()) for r, a in sorted(book.items()) if int(a[sel].sum())}


def _latency(counts: np.ndarray) -> dict[str, float | None]:
    return {**percentiles_of(counts), "max": max_of(counts)}


def _fleet_section(f: FleetResult, got: np.ndarray, dup: np.ndarray, hours: float) -> dict[str, Any]:
    produced, predictions = int(f.produced.sum()), int(f.predictions.sum())
    dropped = _reasons(f.dropped, slice(None))
    published = int(f.published.sum())
    sec: dict[str, Any] = {
        "devices": f.n,
        "readings_produced": produced,
        "predictions": predictions,
        "dropped": dropped,
        "flagged": _reasons(f.flagged, slice(None)),
        "unattributed": dict(f.unattributed),
        "not_sampled": int(f.not_sampled.sum()),
        "published": published,
        "delivered": int(got.sum()),
        "missing": published - int(got.sum()),
        "duplicates": int(dup.sum()),
        "outbox_peak": int(f.outbox_peak.max()) if f.n else 0,
        "outbox_dropped": int(f.outbox_dropped.sum()),
        "outbox_left": int(f.outbox_left.sum()),
        "latency_us": _latency(f.latency_counts.sum(axis=0)),
        "deadline_us": f.period * 1e6,
        "deadline_misses": int(f.deadline_misses.sum()),
        "reboots": int(f.reboots.sum()),
        "restores": dict(f.restores),
        "after_boot": dict(f.after_boot),
        "faults_injected": dict(f.injected),
        "accounting": {
            "balanced": produced == predictions + sum(dropped.values()) and predictions == published,
            "runtime_readings": f.runtime_readings,
            "runtime_predictions": f.runtime_predictions,
        },
    }
    sec.update(_quality(f, slice(None), hours))
    return sec


def _quality(f: FleetResult, sel: slice | int, hours: float) -> dict[str, Any]:
    if not f.scored:
        return {"quality": f"no ground truth to score a {f.task!r} model on the {f.signal_kind!r} signal"}
    return sim_task_for(f.task).quality(f, sel, hours)


def _device_section(f: FleetResult, i: int, got: np.ndarray, dup: np.ndarray, hours: float) -> dict[str, Any]:
    d: dict[str, Any] = {
        "fleet": f.name,
        "readings_produced": int(f.produced[i]),
        "predictions": int(f.predictions[i]),
        "dropped": _reasons(f.dropped, i),
        "flagged": _reasons(f.flagged, i),
        "not_sampled": int(f.not_sampled[i]),
        "published": int(f.published[i]),
        "seq": [int(f.first_seq[i]), int(f.last_seq[i])],
        "delivered": int(got[i]),
        "missing": int(f.published[i] - got[i]),
        "duplicates": int(dup[i]),
        "outbox_peak": int(f.outbox_peak[i]),
        "latency_us": _latency(f.latency_counts[i]),
        "deadline_misses": int(f.deadline_misses[i]),
        "reboots": int(f.reboots[i]),
    }
    q = _quality(f, i, hours)
    sim = sim_task_for(f.task)
    if sim.quality_key in q:
        d.update(sim.per_device(q[sim.quality_key]))
    return d


def _merge(sections: list[dict[str, Any]], fleets: list[FleetResult]) -> dict[str, Any]:
    """The whole fleet: sums, latency percentiles over every device's histogram, pooled quality."""
    total: dict[str, Any] = {}
    for key in ("devices", "readings_produced", "predictions", "not_sampled", "published", "delivered", "missing",
                "duplicates", "outbox_dropped", "outbox_left", "deadline_misses", "reboots"):  # fmt: skip
        total[key] = sum(int(s[key]) for s in sections)
    for key in ("dropped", "flagged", "unattributed", "restores", "after_boot", "faults_injected"):
        merged: dict[str, int] = {}
        for s in sections:
            for r, n in s[key].items():
                merged[r] = merged.get(r, 0) + int(n)
        total[key] = merged
    total["outbox_peak"] = max(int(s["outbox_peak"]) for s in sections)
    total["latency_us"] = _latency(np.sum([f.latency_counts.sum(axis=0) for f in fleets], axis=0))
    total["accounting"] = {"balanced": all(s["accounting"]["balanced"] for s in sections)}
    for sim in SIM_TASKS.values():  # one fleet: its figures; several: each fleet's, in its own section
        if sim.quality_key:
            total.update(sim.pooled([s[sim.quality_key] for s in sections if sim.quality_key in s], len(sections)))
    return total


def build_report(
    sim: RunView,
    results: list[FleetResult],
    delivered: Delivered | None,
    sim_end: float,
    run_wall: float,
    total_wall: float,
    interrupted: bool,
) -> Report:
    sc = sim.scenario
    hours = max(sim_end, 1e-9) / 3600.0
    fleets, devices, traces, lat = {}, {}, {}, {}
    sections = []
    for f in results:
        got, dup = _delivery(f, delivered)
        sec = _fleet_section(f, got, dup, hours)
        sec.update(
            {
                "bundle": f.bundle,
                "artifact": f.artifact,
                "backend": f.backend,
                "task": f.task,
                "signal": f.signal_kind,
                "rate": f.rate,
                "profile": f.profile.to_dict(sc.host_score),
                "host_step_us": f.host.to_dict() if f.host else None,
                "modelled_median_us": f.modelled_median_us,
                "footprint": dict(f.footprint),
                "warnings": list(f.warnings),
            }
        )
        fleets[f.name] = sec
        sections.append(sec)
        for i, dev in enumerate(f.ids):
            devices[dev] = _device_section(f, i, got, dup, hours)
        traces[f.name] = {
            "device": f.ids[0],
            "task": f.task,
            "labels": f.labels,
            "threshold": f.threshold,
            **{k: np.asarray(v) for k, v in f.trace.items()},
        }
        lat[f.name] = f.latency_counts.sum(axis=0)
    series = _series(sim, results, delivered)
    data = {
        "scenario": {
            "name": sc.name,
            "duration_s": sc.duration_s,
            "seed": sc.seed,
            "realtime": sc.realtime,
            "broker": sc.broker.url or "memory",
            "host_score": sc.host_score,
            "faults": [{**spec.to_dict(), "hit": _hit(sim, spec)} for spec in sc.faults],
        },
        "run": {
            "simulated_s": sim_end,
            "wall_s": run_wall,
            "total_wall_s": total_wall,
            "speed": sim_end / max(run_wall, 1e-9),
            "interrupted": interrupted,
            "workers": sim.workers,
            "ticks": sim.ticks,
            "late_ticks": sim.late_ticks if sc.realtime else None,
            "max_lag_s": sim.max_lag_s if sc.realtime else None,
            "backlog": (backlog := _backlog(sim.series)),
            "held": _held(sim.ticks, sim.late_ticks, backlog) if sc.realtime else None,
            "outages": [{"start": a, "end": b, "kind": k} for a, b, k in sim.outages],
            # how the independent subscriber's count ended after the run: what "missing" means
            "count": None if delivered is None else {"waited_s": delivered.waited_s, "stopped": delivered.stopped},
            "cpu_s": dict(sim.cpu_s),
            "load_average": _loadavg(),
            "host_cores": os.cpu_count() or 1,
        },
        "fleet": _merge(sections, results),
        "fleets": fleets,
        "devices": devices,
    }
    return Report(data, series, traces, lat, list(sim.outages))


BACKLOG_HELD_S = 2.0  # a real-time run is held when its outboxes end at most this many seconds behind
LATE_HELD = 0.05  # ... and at most this share of its ticks ran later than one sample period


def _backlog(series: Series) -> dict[str, float] | None:
    """How far delivery trailed production: the predictions still in the outboxes at the last simulated second,
    also as seconds of the fleet's production. A simulated clock can keep pace while the outboxes grow (the
    predictions then arrive only in the flush after the run): this is the figure that shows it."""
    if not series.outbox:
        return None
    per_s = np.diff(np.asarray([0, *series.produced], float))[-10:]  # production over the last seconds
    end = float(series.outbox[-1])
    return {
        "outbox_end": end,
        "outbox_max": float(max(series.outbox)),
        "seconds": round(end / max(float(per_s.mean()), 1e-9), 2),
    }


def _held(ticks: int, late: int, backlog: dict[str, float] | None) -> bool:
    """Real time held: the clock kept pace (few late ticks) and delivery kept up (a small backlog at the end)."""
    return late <= LATE_HELD * max(ticks, 1) and (backlog is None or backlog["seconds"] <= BACKLOG_HELD_S)


def _loadavg() -> list[float] | None:
    """The host's 1/5/15-minute load: simulated speed depends on what else the machine is doing."""
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _hit(sim: RunView, spec: Any) -> Any:
    ids = sim.fault_devices.get(id(spec))
    return "all" if ids is None else (len(ids) if len(ids) > 20 else ids)


def _series(sim: RunView, results: list[FleetResult], delivered: Delivered | None) -> dict[str, list[float]]:
    s = sim.series
    out: dict[str, list[float]] = {"t": list(s.t), "outbox": [float(v) for v in s.outbox]}
    produced = np.diff(np.asarray([0, *s.produced], float))
    out["produced"] = produced.tolist()
    per = np.zeros(len(s.t))
    if delivered is None:  # in-memory: deliveries were binned by simulated second
        for f in results:
            ps = np.asarray(f.delivered_per_second if f.delivered_per_second is not None else [], float)
            n = min(len(ps), len(per))
            per[:n] += ps[:n]
    elif s.wall and len(delivered.per_second):  # broker: binned by wall-clock second; mapped onto simulated time
        # A wall second's deliveries count at the first sample taken after that second ended: each of them was
        # produced before that sample, so the received curve may trail production by up to a second but never
        # lead it (counted at the bin's middle, a sample taken inside the bin got deliveries made after it).
        ends = delivered.started + np.arange(1, len(delivered.per_second) + 1)  # (S,) wall time each bin ends
        idx = np.minimum(np.searchsorted(np.asarray(s.wall), ends), len(s.t) - 1)
        np.add.at(per, idx, delivered.per_second)
    out["delivered"] = per.tolist()
    return out


def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"


def count_line(run: dict[str, Any]) -> str:
    """The summary's line when the independent subscriber stopped counting before everything arrived."""
    count = run.get("count")
    if not count or not count["stopped"]:
        return ""
    return (
        f"delivery count: the subscriber counted for {count['waited_s']:.0f} s after the run and stopped "
        f"({count['stopped']}): what it had not received by then is reported missing"
    )


def format_summary(d: dict[str, Any]) -> str:
    sc, run, fl = d["scenario"], d["run"], d["fleet"]
    lines = [
        f"simulation {sc['name']!r}: {fl['devices']} devices, {format_duration(run['simulated_s'])} simulated in "
        f"{format_duration(run['wall_s'])} (x{run['speed']:.1f} {'real time' if not sc['realtime'] else 'speed'}), "
        f"broker: {sc['broker']}" + (" - INTERRUPTED" if run["interrupted"] else ""),
    ]
    if sc["realtime"]:
        lines.append(
            f"real time: {'HELD' if run['held'] else 'NOT HELD'}: {run['late_ticks']} late ticks of {run['ticks']}, "
            f"max lag {run['max_lag_s']:.3f} s"
        )
        cores = run.get("host_cores") or 1
        if not run["held"] and run["workers"] < cores:
            lines.append(
                f"  hint: {run['workers']} process for the devices on a {cores}-core host; --workers {cores} shares "
                "them out (1,000 devices at 10/s on a real broker held with --workers 2 on a 2-core machine)"
            )
    if (b := run.get("backlog")) is not None:
        lines.append(
            f"delivery: {b['outbox_end']:.0f} predictions still in the outboxes at the end of the run "
            f"({b['seconds']:.1f} s of production)"
        )
    if line := count_line(run):
        lines.append(line)
    cpu = run.get("cpu_s") or {}
    if cpu:
        lines.append(
            f"cpu: this process {cpu['simulator']:.1f} s, child processes (workers, broker, subscriber) "
            f"{cpu['child_processes']:.1f} s; host load average {run['load_average']}"
        )
    for name, f in d["fleets"].items():
        prof = f["profile"]
        lat = f["latency_us"]
        lines.append(
            f"[{name}] {f['devices']} x {prof['title']} (x{prof['factor']:.1f} host), {f['artifact']} "
            f"at {f['rate']:g}/s, signal {f['signal']}"
        )
        lines.append(
            f"  latency p50 {_us(lat['p50'])}  p95 {_us(lat['p95'])}  p99 {_us(lat['p99'])}  max {_us(lat['max'])}; "
            f"deadline {_us(f['deadline_us'])}: {f['deadline_misses']} misses"
        )
        lines.extend(f"  {q}" for q in _quality_lines(f))
        for w in f.get("warnings", []):
            lines.append(f"  warning: {w}")
        fp = f.get("footprint") or {}
        if "rss_mb" in fp:
            lines.append(
                f"  runtime peak RSS {fp['rss_mb']:.0f} MB of {fp['profile_memory_mb']:.0f} MB "
                f"({100 * fp['memory_share']:.0f}%), start-up ~{fp['start_s_on_profile']:.1f} s on the profile"
            )
    acc = fl["accounting"]["balanced"]
    dropped = ", ".join(f"{k} {v}" for k, v in fl["dropped"].items()) or "none"
    flagged = ", ".join(f"{k} {v}" for k, v in fl["flagged"].items()) or "none"
    lines += [
        f"readings {fl['readings_produced']} = predictions {fl['predictions']} + dropped ({dropped})"
        f"  [{'balanced' if acc else 'NOT BALANCED'}]; flagged: {flagged}; not sampled: {fl['not_sampled']}",
        f"delivered {fl['delivered']} of {fl['published']} published (missing {fl['missing']}"
        + (f"; {fl['outbox_left']} still in the outboxes when they closed" if fl.get("outbox_left") else "")
        + f", duplicates {fl['duplicates']}); largest outbox {fl['outbox_peak']} (one device's most), "
        f"dropped by bounds {fl['outbox_dropped']}",
    ]
    if fl.get("reboots"):
        after = ", ".join(f"{k} {v}" for k, v in fl["after_boot"].items()) or "-"
        lines.append(
            f"reboots {fl['reboots']}: at boot {', '.join(f'{k} {v}' for k, v in fl['restores'].items())}; "
            f"first reading after boot: {after}"
        )
    if len(d["fleets"]) > 1 and "accuracy" in fl:
        lines.append(f"accuracy over the classifying fleets {pct(fl['accuracy'])}")
    return "\n".join(lines)


def _quality_lines(f: dict[str, Any]) -> list[str]:
    """How right a fleet's model was against the signal's ground truth, as the summary prints it."""
    for sim in SIM_TASKS.values():
        if sim.quality_key and sim.quality_key in f:
            return sim.lines(f[sim.quality_key])
    return [str(f["quality"])] if "quality" in f else []
