"""The report's plots (matplotlib, Agg): latency distribution, delivery over time with outages shaded,
predictions against ground truth for each fleet's sample device, over every device's score in that fleet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware_sim.metrics import histogram_bins
from firmware_sim.tasks import sim_task_for

if TYPE_CHECKING:
    from firmware_sim.report import Report

_SHADE = {"broker-outage": "tab:red", "slow-network": "tab:orange"}


def write_plots(report: Report, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    paths = [_latency(report, out / "latency.png"), _delivery(report, out / "delivery.png")]
    for name in report.traces:
        paths.append(_predictions(report, name, out / f"predictions-{name}.png"))
    return paths


def _latency(report: Report, path: Path) -> Path:
    import matplotlib.pyplot as plt

    edges = histogram_bins() / 1000.0  # ms
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, counts in report.latency_counts.items():
        f = report.data["fleets"][name]
        nz = np.flatnonzero(counts)
        if not len(nz):
            continue
        lo, hi = max(nz[0] - 5, 0), min(nz[-1] + 6, len(counts))
        ax.stairs(counts[lo:hi], edges[lo : hi + 1], fill=True, alpha=0.5, label=f"{name} ({f['profile']['title']})")
        ax.axvline(f["deadline_us"] / 1000.0, color="k", ls="--", lw=1)
        ax.text(f["deadline_us"] / 1000.0, ax.get_ylim()[1] * 0.9, " deadline", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")  # the scheduling-hiccup tail is rare: a linear axis would hide it
    ax.set_xlabel("modelled latency per reading, ms (log scale)")
    ax.set_ylabel("readings (log scale)")
    ax.set_title("Per-reading latency on the device profile")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _delivery(report: Report, path: Path) -> Path:
    """Cumulative readings produced and predictions delivered (the gap between them is the backlog), and the
    outboxes' depth below. Per-second counts made a sawtooth: a broker's deliveries are counted per wall second,
    which spans several simulated seconds in a fast run, so most simulated seconds showed none."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    s = report.series
    fig, (ax, low) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(2, 1))
    t = np.asarray(s["t"])
    if len(t):
        ax.plot(t, np.cumsum(s["produced"]), lw=1.5, label="readings produced")
        if len(s["delivered"]) == len(t):
            # through a broker: what an independent subscriber received, which may trail the devices' outboxes
            # (the broker still holds the rest); in memory: delivered by (device, seq)
            via = report.data.get("scenario", {}).get("broker", "memory") != "memory"
            label = (
                "predictions received by a subscriber (counted per wall second: up to 1 s late)"
                if via
                else "predictions delivered"
            )
            ax.plot(t, np.cumsum(s["delivered"]), lw=1.5, ls="--", label=label)
        low.plot(t, s["outbox"], color="tab:gray", lw=1)  # not yet acknowledged by the broker
    seen: set[str] = set()
    for start, end, kind in report.outages:
        color = _SHADE.get(kind, "tab:purple")
        ax.axvspan(start, end, color=color, alpha=0.15, label=None if kind in seen else kind)
        low.axvspan(start, end, color=color, alpha=0.15)
        seen.add(kind)
    ax.set_ylim(bottom=0)
    # whole predictions: an outbox empty throughout showed a 0 to 0.05 axis of fractions
    low.set_ylim(0, max(1.0, 1.05 * max(s["outbox"], default=0)))
    low.yaxis.set_major_locator(MaxNLocator(integer=True))
    low.set_xlim(0, _end(report, t))
    ax.set_ylabel("count since start")
    low.set_ylabel("in the devices'\noutboxes (all)")
    low.set_xlabel("simulated time, s")
    ax.set_title(f"Delivery over time, {report.fleet['devices']} devices (network faults shaded)")
    # above the plot, never over a line
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.08), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _end(report: Report, t: np.ndarray) -> float:
    """The x axis spans the whole simulated run, not only the seconds that have data."""
    planned = report.data.get("scenario", {}).get("duration_s") or 0.0
    return float(max(planned, t[-1] if len(t) else 0.0, 1.0))


def _predictions(report: Report, name: str, path: Path) -> Path:
    """One device's predictions against the ground truth over time (the fleet's sample device), and below it
    every device of the fleet: one device alone says nothing about the others."""
    import matplotlib.pyplot as plt

    tr = report.traces[name]
    t = np.asarray(tr["t"])
    devices = {d: v for d, v in report.data["devices"].items() if v["fleet"] == name}
    fig, (ax, low) = plt.subplots(2, 1, figsize=(10, 6.5), height_ratios=(3, 2))
    sim = sim_task_for(tr["task"])  # what a prediction and its truth look like
    if len(t):
        sim.plot_trace(ax, tr, t)
    ax.set_xlim(0, _end(report, t))
    ax.set_xlabel("simulated time, s")
    ax.set_title(f"{name}: predictions vs ground truth, device {tr['device']} (one of {len(devices)})")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.1), ncol=4, fontsize=8, frameon=False)
    sim.plot_devices(low, devices, str(tr["device"]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
