"""The report's plots (matplotlib, Agg): latency distribution, delivery over time with outages shaded,
predictions against ground truth for each fleet's sample device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware_sim.metrics import histogram_bins

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

    s = report.series
    fig, (ax, low) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(2, 1))
    t = np.asarray(s["t"])
    if len(t):
        ax.plot(t, np.cumsum(s["produced"]), lw=1.5, label="readings produced")
        if len(s["delivered"]) == len(t):
            # through a broker: what an independent subscriber received, which may trail the devices' outboxes
            # (the broker still holds the rest); in memory: delivered by (device, seq)
            via = report.data.get("scenario", {}).get("broker", "memory") != "memory"
            label = "predictions received by a subscriber" if via else "predictions delivered"
            ax.plot(t, np.cumsum(s["delivered"]), lw=1.5, ls="--", label=label)
        low.plot(t, s["outbox"], color="tab:gray", lw=1)  # not yet acknowledged by the broker
    seen: set[str] = set()
    for start, end, kind in report.outages:
        color = _SHADE.get(kind, "tab:purple")
        ax.axvspan(start, end, color=color, alpha=0.15, label=None if kind in seen else kind)
        low.axvspan(start, end, color=color, alpha=0.15)
        seen.add(kind)
    ax.set_ylim(bottom=0)
    low.set_ylim(bottom=0)
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
    import matplotlib.pyplot as plt

    tr = report.traces[name]
    t = np.asarray(tr["t"])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if tr["task"] == "classify" and len(t):
        labels = tr["labels"]
        ax.step(t, tr["truth"], where="post", lw=2, alpha=0.5, label="ground truth")
        ax.step(t, tr["pred"], where="post", lw=0.8, label="prediction")
        ax.set_yticks(range(len(labels)), labels)
    elif len(t):
        score = np.asarray(tr["score"], float)
        truth = np.asarray(tr["truth"], float)
        ax.plot(t, score, lw=0.8, label="anomaly score")
        if tr.get("threshold") is not None:
            ax.axhline(float(tr["threshold"]), color="tab:red", ls="--", lw=1, label="threshold")
        top = np.nanmax(score) if np.isfinite(score).any() else 1.0
        ax.fill_between(t, 0, top, where=truth > 0, color="tab:red", alpha=0.1, step="post", label="anomalous (truth)")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("anomaly score")
    ax.set_xlim(0, _end(report, t))
    ax.set_xlabel("simulated time, s")
    ax.set_title(f"{name}: predictions vs ground truth, device {tr['device']}")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.1), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
