"""anomaly: the bundle's alarm rule over the published scores against anomaly episodes of the truth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from firmware_sim.tasks.base import Find, SimTask, pct

if TYPE_CHECKING:
    import pandas as pd

    from edge_runtime.bundle.manifest import Manifest
    from firmware_sim.results import FleetResult


class AnomalySim(SimTask):
    name = "anomaly"
    heldout_truth = "anomaly"
    alarms = True
    quality_key = "anomaly"

    def scored(self, truth_kind: str, truth_map: np.ndarray | None, forecasts: bool) -> bool:
        return truth_kind == "anomaly"

    def quality(self, f: FleetResult, sel: slice | int, hours: float) -> dict[str, Any]:
        devs = None if isinstance(sel, slice) else np.array([sel])
        return {"anomaly": {**f.anomaly.summary(devs, hours), "alarm_rule": f.alarm_rule}}

    def per_device(self, q: dict[str, Any]) -> dict[str, Any]:
        return {"anomaly": {k: q[k] for k in ("episodes", "detected", "missed", "detection_delay_s", "false_alarms")}}

    def lines(self, q: dict[str, Any]) -> list[str]:
        delay = q["detection_delay_s"]
        share = q["detected"] / q["episodes"] if q["episodes"] else None
        return [
            f"anomalies: {q['detected']} of {q['episodes']} episodes detected ({pct(share)})"
            + (f", delay p50 {delay['p50']:.1f} s (max {delay['max']:.1f} s)" if delay else "")
            + f"; {q['false_alarms']} false alarms ({q['false_alarms_per_device_day']:.2f} per device-day)"
            + (f"; {n} on injected sensor faults, not counted" if (n := q.get("alarms_on_sensor_faults")) else ""),
            *([f"({q['alarm_rule']})"] if q.get("alarm_rule") else []),
        ]

    def file_truth(
        self, manifest: Manifest, df: pd.DataFrame, features: list[str], find: Find
    ) -> tuple[str | None, str]:
        col = find(self.name, (self.name,))  # the anomaly column (0 normal, 1 anomalous)
        return col, self.heldout_truth if col is not None else "none"
