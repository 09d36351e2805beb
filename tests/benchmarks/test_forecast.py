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
        # Airline's test split (15% of 144), state warmed by the readings before it: all but the last reading
        # (no target) are scored; from a reset, as the bundle's report, the warm-up after it is not
        assert r["readings"] == 22 - 1 and r["reset"]["readings"] == 22 - 4 - 1
    assert rows[0]["seasonal_naive"] != rows[0]["persistence"]  # the yearly cycle's forecast, not the last month's
    assert rows[0]["target_mode"] == "delta" and "drifted" in rows[0]["auto_why"]  # Airline trends upwards
    table = forecast.markdown(rows)
    assert table.count("\n") == 1 + len(rows) and "| Airline | trending | numpy-int8 |" in table
    assert json.loads((out / "forecast.json").read_text()) == rows


def test_the_device_stream_reproduces_the_bundle_quality_report(quick) -> None:
    """MAE of the Predictor stepped reading by reading = the exporter's figure; baselines = the manifest's."""
    rows, out = quick
    m = Manifest.load(out / "bundles" / "Airline")
    for r in rows:
        q = m.quality[r["artifact"]]
        assert r["reset"]["mae"] == pytest.approx(q["mae"], rel=1e-6)
        for name in ("persistence", "seasonal_naive", "drift"):
            assert r["reset"][name] == pytest.approx(q["baselines"][name], rel=1e-9)
        best = min(r["reset"][k] for k in ("persistence", "seasonal_naive", "drift"))
        assert (r["reset"]["mae"] < best) == q["beats_baselines"]


def test_on_a_trending_series_the_device_beats_persistence_and_seasonal_naive(quick) -> None:
    """The done-when of the benchmark, on its short version: Airline trends, and the streamed model (fp32 and
    int8) must beat repeating the last reading and repeating last year's, on the same readings."""
    rows, _ = quick
    for r in rows:
        assert r["kind"] == "trending"
        assert r["mae"] < r["persistence"] and r["mae"] < r["seasonal_naive"], r
        assert r["margins"]["persistence"] > 0.1, r  # by a margin, not by a hair
