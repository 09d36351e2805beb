"""forecast: each published forecast against the readings it forecast, once they arrive, next to persistence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from firmware_sim.tasks.base import Find, SimTask

if TYPE_CHECKING:
    import pandas as pd

    from edge_runtime.bundle.manifest import Manifest
    from firmware_sim.results import FleetResult


class ForecastSim(SimTask):
    name = "forecast"
    heldout_truth = "target"
    forecasts = True
    quality_key = "forecast"

    def scored(self, truth_kind: str, truth_map: np.ndarray | None, forecasts: bool) -> bool:
        return forecasts

    def quality(self, f: FleetResult, sel: slice | int, hours: float) -> dict[str, Any]:
        assert f.forecasts is not None
        return {"forecast": f.forecasts.summary(None if isinstance(sel, slice) else np.array([sel]))}

    def per_device(self, q: dict[str, Any]) -> dict[str, Any]:
        return {"forecast": {k: q[k] for k in ("readings", "mae", "persistence_mae")}}

    def lines(self, q: dict[str, Any]) -> list[str]:
        if not q["readings"]:
            return ["forecast: no forecast could be scored yet (each is scored when its readings arrive)"]
        skill = q["skill_vs_persistence"]
        return [
            f"forecast MAE {q['mae']:.4g} over {q['readings']} forecasts; persistence {q['persistence_mae']:.4g}"
            + ("" if skill is None else f" (skill {skill:+.2f}: {'beats' if skill > 0 else 'does NOT beat'} it)")
        ]

    def file_truth(
        self, manifest: Manifest, df: pd.DataFrame, features: list[str], find: Find
    ) -> tuple[str | None, str]:
        targets = list(manifest.output.targets)
        return None, "target" if targets and all(t in df.columns for t in targets) else "none"

    def unscored(self) -> str:
        return "no column for the bundle's forecast targets in them (not scored)"
