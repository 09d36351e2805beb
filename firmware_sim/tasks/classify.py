"""classify: predicted labels against the signal's (or the recordings') labels, as a confusion matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from firmware_sim.metrics import classification_scores
from firmware_sim.tasks.base import Find, SimTask, Tally, pct

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from edge_runtime.bundle.manifest import Manifest
    from firmware_sim.results import FleetResult


class ClassifySim(SimTask):
    name = "classify"
    heldout_truth = "label"
    quality_key = "classification"

    def truth_map(self, labels: list[str], truth_kind: str, signal_labels: list[str]) -> np.ndarray | None:
        if truth_kind != "label":
            return None
        by_name = {name: i for i, name in enumerate(labels)}
        return np.array([by_name.get(name, -1) for name in signal_labels])

    def scored(self, truth_kind: str, truth_map: np.ndarray | None, forecasts: bool) -> bool:
        return truth_map is not None

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
        assert books.truth_map is not None
        tr = books.truth_map[truth]
        ok = (tr >= 0) & (lab >= 0)
        np.add.at(books.confusion, (devs[ok], tr[ok], lab[ok]), 1)

    def quality(self, f: FleetResult, sel: slice | int, hours: float) -> dict[str, Any]:
        conf = f.confusion[sel].sum(axis=0) if isinstance(sel, slice) else f.confusion[sel]
        return {"classification": classification_scores(conf, f.labels)}

    def per_device(self, q: dict[str, Any]) -> dict[str, Any]:
        return {"accuracy": q["accuracy"], "macro_f1": q["macro_f1"]}

    def pooled(self, found: list[dict[str, Any]], fleets: int) -> dict[str, Any]:
        if len(found) == fleets == 1:
            return {"classification": found[0]}
        if found:  # several fleets: accuracy over all their readings
            n = sum(c["readings"] for c in found)
            return {"accuracy": sum((c["accuracy"] or 0) * c["readings"] for c in found) / max(n, 1)}
        return {}

    def lines(self, q: dict[str, Any]) -> list[str]:
        return [f"accuracy {pct(q['accuracy'])}, macro F1 {pct(q['macro_f1'])} over {q['readings']} readings"]

    def shown(self, labels: list[str], value: float, otherwise: Any) -> Any:
        return labels[int(value)] if value >= 0 else otherwise

    def file_truth(
        self, manifest: Manifest, df: pd.DataFrame, features: list[str], find: Find
    ) -> tuple[str | None, str]:
        named = find("label", ())  # the column the user named, else the one most often holding the labels
        if named is not None:
            return named, "label"
        labels = set(manifest.output.labels)
        best, hits = None, 0
        for c in df.columns:
            if c in features:
                continue
            n = int(df[c].astype(str).isin(labels).sum())
            if n > hits:
                best, hits = c, n
        return best, "label" if best is not None else "none"

    def plot_trace(self, ax: Axes, tr: dict[str, Any], t: np.ndarray) -> None:
        labels = tr["labels"]
        ax.step(t, tr["truth"], where="post", lw=2, alpha=0.5, label="ground truth")
        ax.step(t, tr["pred"], where="post", lw=0.8, label="prediction")
        ax.set_yticks(range(len(labels)), labels)

    def plot_devices(self, ax: Axes, devices: dict[str, dict[str, Any]], sample: str) -> None:
        """Each device's accuracy, worst first, from zero: the spread across the fleet and its worst device."""
        scored = sorted((float(v["accuracy"]), d) for d, v in devices.items() if v.get("accuracy") is not None)
        if not scored:
            ax.set_axis_off()
            return
        acc = np.asarray([a for a, _ in scored]) * 100.0  # (D,) percent
        colors = ["tab:orange" if d == sample else "tab:blue" for _, d in scored]
        ax.bar(np.arange(len(acc)), acc, color=colors, width=0.8 if len(acc) < 50 else 1.0)
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, len(acc) - 0.4)
        ax.set_ylabel("accuracy, %")
        ax.set_xlabel(f"devices, worst first ({sample} above in orange)")
        if len(acc) <= 12:
            ax.set_xticks(np.arange(len(acc)), [d for _, d in scored], fontsize=8)
        else:
            ax.set_xticks([])
        ax.set_title(
            f"accuracy per device: median {np.median(acc):.1f}%, worst {acc[0]:.1f}% ({scored[0][1]}), "
            f"best {acc[-1]:.1f}%",
            fontsize=9,
        )
