"""What the report's plots show, read back from the figures (the PNGs were looked at too; see the issue's note)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim import plots
from firmware_sim.report import Report

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plotting functions close, kept to be read."""
    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def _device(fleet: str, **kw: Any) -> dict[str, Any]:
    return {"fleet": fleet, **kw}


def test_predictions_plot_shows_every_device_of_the_fleet(tmp_path: Path, figures: list[Any]) -> None:
    """The sample device's timeline, and below it each device's accuracy, worst first, from zero."""
    acc = {"dev0000": 0.97, "dev0001": 0.91, "dev0002": 0.99, "dev0003": 0.95}
    devices = {d: _device("fleet0", accuracy=a) for d, a in acc.items()}
    devices["other"] = _device("fleet1", accuracy=0.1)  # another fleet's device: not in this plot
    trace = {"device": "dev0000", "task": "classify", "labels": ["idle", "walk"], "t": np.arange(10.0),
             "truth": np.zeros(10, int), "pred": np.zeros(10, int)}  # fmt: skip
    report = Report({"scenario": {"duration_s": 10.0}, "devices": devices}, {}, {"fleet0": trace}, {}, [])
    plots._predictions(report, "fleet0", tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    top, low = figures[0].axes
    assert "device dev0000 (one of 4)" in top.get_title()
    heights = [b.get_height() for b in low.patches]
    assert heights == pytest.approx([91.0, 95.0, 97.0, 99.0])
    assert [t.get_text() for t in low.get_xticklabels()] == ["dev0001", "dev0003", "dev0000", "dev0002"]
    assert low.get_ylim() == (0.0, 100.0)
    assert "median 96.0%, worst 91.0% (dev0001), best 99.0%" in low.get_title()
    colors = {tuple(b.get_facecolor()) for b in low.patches}
    assert len(colors) == 2  # the sample device stands out


def test_anomaly_plot_shows_episodes_and_false_alarms_per_device(tmp_path: Path, figures: list[Any]) -> None:
    per = {"dev0000": (3, 0, 1), "dev0001": (1, 2, 0), "dev0002": (2, 1, 4)}  # detected, missed, false alarms
    devices = {
        d: _device("cold", anomaly={"episodes": a + b, "detected": a, "missed": b, "false_alarms": c})
        for d, (a, b, c) in per.items()
    }
    trace = {"device": "dev0000", "task": "anomaly", "labels": [], "threshold": 1.0, "t": np.arange(5.0),
             "score": np.ones(5), "truth": np.zeros(5)}  # fmt: skip
    report = Report({"scenario": {"duration_s": 5.0}, "devices": devices}, {}, {"cold": trace}, {}, [])
    plots._predictions(report, "cold", tmp_path / "p.png")
    low = figures[0].axes[1]
    assert "per device: 6 of 9 episodes detected, 5 false alarms" in low.get_title()
    assert [t.get_text() for t in low.get_xticklabels()] == ["dev0001", "dev0002", "dev0000"]  # most missed first
    bars = [(b.get_x(), b.get_y(), b.get_height()) for b in low.patches]
    detected, missed = bars[:3], bars[3:]
    assert [h for _, _, h in detected] == [1, 2, 3] and [h for _, _, h in missed] == [2, 1, 0]
    assert [y for _, y, _ in missed] == [1, 2, 3]  # stacked on the detected ones


def test_an_empty_outbox_panel_counts_whole_predictions(tmp_path: Path, figures: list[Any]) -> None:
    """Every prediction delivered at once: the outbox panel used to show a 0 to 0.05 axis of fractions."""
    t = [1.0, 2.0, 3.0]
    series = {"t": t, "produced": [10.0] * 3, "delivered": [10.0] * 3, "outbox": [0.0] * 3}
    data = {"scenario": {"duration_s": 3.0, "broker": "memory"}, "fleet": {"devices": 2}}
    plots._delivery(Report(data, series, {}, {}, []), tmp_path / "d.png")
    low = figures[0].axes[1]
    assert low.get_ylim() == (0.0, 1.0)
    assert all(float(v).is_integer() for v in low.get_yticks())
