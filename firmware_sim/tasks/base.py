"""`SimTask`: what the simulator does differently for one task, the one place each of those rules lives.

Chosen once from the bundle's `output.task` (`firmware_sim.tasks.sim_task_for`) and asked by the fleet's
books (what is ground truth, how a prediction is scored against it), the replay of recordings (which
column of a file is the truth), the report (the quality section, per device and pooled over fleets, and
its summary lines), the plots and the live view. The runtime's counterpart is `edge_runtime.stream.heads`,
the trainer's `trainer.tasks`.

Scoring state stays in the books (`Tally` below: confusion counts, anomaly episodes); a
task says which of it to fill and how to read it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from firmware_sim.metrics import AnomalyTracker

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from edge_runtime.bundle.manifest import Manifest
    from firmware_sim.results import FleetResult

Find = Callable[[str, tuple[str, ...]], "str | None"]  # a replay file's column for a key (a parameter or defaults)


def pct(v: float | None) -> str:
    """A share as the summary prints it."""
    return "-" if v is None else f"{100 * v:.1f}%"


class Tally(Protocol):
    """The books' scoring state a task fills (`firmware_sim.books.FleetBooks`)."""

    truth_map: np.ndarray | None
    confusion: np.ndarray  # (D, L, L) truth x predicted
    anomaly: AnomalyTracker


class SimTask:
    name: ClassVar[str]
    # the ground truth of the bundle's own held-out readings (replayed when no signal fits):
    # "label" | "anomaly" | "target" | "none"
    heldout_truth: ClassVar[str] = "none"
    forecasts: ClassVar[bool] = False  # scored by forecast errors once the forecast readings arrive
    alarms: ClassVar[bool] = False  # the devices publish `is_anomaly` (the bundle's alarm rule or threshold)
    # the key of the task's figures in the report's fleet section (None: nothing to score)
    quality_key: ClassVar[str | None] = None

    def truth_map(self, labels: list[str], truth_kind: str, signal_labels: list[str]) -> np.ndarray | None:
        """The signal's truth indices mapped onto the bundle's outputs (-1: none of them); None: not by index."""
        return None

    def scored(self, truth_kind: str, truth_map: np.ndarray | None, forecasts: bool) -> bool:
        """Whether this fleet's predictions can be scored against the signal's truth."""
        return False

    def score(
        self,
        books: Tally,
        devs: np.ndarray,
        t: float | np.ndarray,
        truth: np.ndarray,
        lab: np.ndarray,
        alarm: np.ndarray,
        excused: np.ndarray | None = None,
    ) -> None:
        """Truth (M,) against the device's published `is_anomaly` (M,) bool into anomaly episodes; t: the
        tick's time, or each entry's (M,) for a block (entries tick-major); excused (M,) bool: the device's
        sensor has just read wrong values (an injected fault), so an alarm is not false."""
        if np.ndim(t) == 0:
            books.anomaly.add(devs, float(t), truth.astype(bool), alarm, excused)
            return
        ts = np.asarray(t)
        cuts = np.flatnonzero(np.diff(ts)) + 1  # tick by tick: episodes and alarms have an order
        for part in np.split(np.arange(len(ts)), cuts):
            ex = None if excused is None else excused[part]
            books.anomaly.add(devs[part], float(ts[part[0]]), truth[part].astype(bool), alarm[part], ex)

    def quality(self, f: FleetResult, sel: slice | int, hours: float) -> dict[str, Any]:
        """The report's quality section of a scored fleet, of its devices `sel` (all, or one's index)."""
        return {}

    def per_device(self, q: dict[str, Any]) -> dict[str, Any]:
        """What a device's own section shows of its quality section `q[quality_key]`."""
        return {}

    def pooled(self, found: list[dict[str, Any]], fleets: int) -> dict[str, Any]:
        """The run's quality from each fleet's of this task (`found`) among `fleets` fleets: one fleet's own."""
        return {self.quality_key: found[0]} if self.quality_key and len(found) == fleets == 1 else {}

    def lines(self, q: dict[str, Any]) -> list[str]:
        """The summary's lines of a quality section `q[quality_key]`."""
        return []

    def shown(self, labels: list[str], value: float, otherwise: Any) -> Any:
        """A truth or prediction of the trace as the live view shows it: a label's name, else `otherwise`."""
        return otherwise

    def file_truth(
        self, manifest: Manifest, df: pd.DataFrame, features: list[str], find: Find
    ) -> tuple[str | None, str]:
        """(column, truth kind) of a replay file `df`; kind "none" when it holds no truth."""
        return None, "none"

    def unscored(self) -> str:
        """Why replayed recordings are not scored, for the report's note."""
        return f"no ground truth in them for a {self.name} model (not scored)"

    def plot_trace(self, ax: Axes, tr: dict[str, Any], t: np.ndarray) -> None:
        """The sample device's predictions against the truth over time t (K,): its scores, the threshold and
        the anomalous stretches."""
        score = np.asarray(tr["score"], float)
        truth = np.asarray(tr["truth"], float)
        ax.plot(t, score, lw=0.8, label="anomaly score")
        if tr.get("threshold") is not None:
            ax.axhline(float(tr["threshold"]), color="tab:red", ls="--", lw=1, label="threshold")
        top = np.nanmax(score) if np.isfinite(score).any() else 1.0
        ax.fill_between(t, 0, top, where=truth > 0, color="tab:red", alpha=0.1, step="post", label="anomalous (truth)")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("anomaly score")

    def plot_devices(self, ax: Axes, devices: dict[str, dict[str, Any]], sample: str) -> None:
        """Every device of the fleet side by side (`sample` is the one traced above): anomaly episodes
        detected and missed (stacked), and the false alarms, most missed first."""
        rows = sorted(
            ((d, v["anomaly"]) for d, v in devices.items() if v.get("anomaly")),
            key=lambda r: (-int(r[1]["missed"]), -int(r[1]["false_alarms"])),
        )
        if not rows:
            ax.set_axis_off()
            return
        x = np.arange(len(rows))
        detected = np.asarray([int(a["detected"]) for _, a in rows])
        missed = np.asarray([int(a["missed"]) for _, a in rows])
        alarms = np.asarray([int(a["false_alarms"]) for _, a in rows])
        width = 0.8 if len(rows) < 50 else 1.0
        ax.bar(x, detected, width=width, color="tab:green", label="episodes detected")
        ax.bar(x, missed, width=width, bottom=detected, color="tab:red", label="episodes missed")
        ax.plot(x, alarms, "k.", label="false alarms")
        ax.set_ylim(bottom=0)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("count")
        ax.set_xlabel("devices, most missed first, then most false alarms")
        if len(rows) <= 12:
            ax.set_xticks(x, [d for d, _ in rows], fontsize=8)
        else:
            ax.set_xticks([])
        ax.set_title(
            f"per device: {detected.sum()} of {detected.sum() + missed.sum()} episodes detected, "
            f"{alarms.sum()} false alarms",
            fontsize=9,
        )
        ax.legend(loc="upper right", fontsize=8)
