"""The forecasting benchmark's short version: the whole pipeline on a real series, and figures that agree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import forecast
from edge_runtime.bundle.manifest import Manifest


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("bench")
    return forecast.run(quick=True, out=out), out


def test_every_artifact_is_streamed_next_to_the_baselines_and_ets(quick) -> None:
    rows, out = quick
    assert {(r["series"], r["artifact"]) for r in rows} == {("Airline", "numpy-fp32"), ("Airline", "numpy-int8")}
    for r in rows:
        for key in ("mae", "persistence", "seasonal_naive", "drift", "ets"):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert r["season"] == 12 and r["target_mode"] in ("level", "delta") and "validation MAE" in r["auto_why"]
        # Airline's test split (15% of 144), less the warm-up after the reset and the last reading (no target)
        assert r["readings"] == 22 - 4 - 1
    assert rows[0]["seasonal_naive"] != rows[0]["persistence"]  # the yearly cycle's forecast, not the last month's
    table = forecast.markdown(rows)
    assert table.count("\n") == 1 + len(rows) and "| Airline | trending | numpy-int8 |" in table
    assert json.loads((out / "forecast.json").read_text()) == rows


def test_the_device_stream_reproduces_the_bundle_quality_report(quick) -> None:
    """MAE of the Predictor stepped reading by reading = the exporter's figure; baselines = the manifest's."""
    rows, out = quick
    m = Manifest.load(out / "bundles" / "Airline")
    for r in rows:
        q = m.quality[r["artifact"]]
        assert r["mae"] == pytest.approx(q["mae"], rel=1e-6)
        for name in ("persistence", "seasonal_naive", "drift"):
            assert r[name] == pytest.approx(q["baselines"][name], rel=1e-9)
        assert r["beats_baselines"] == q["beats_baselines"]
