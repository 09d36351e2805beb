"""Drifting data: delta targets, baselines beside every forecast, and the warning when a model loses to one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainer import baselines
from trainer.fitting import TrainResult, fit

SMALL: dict[str, Any] = {
    "hidden": 16,
    "window": 48,
    "stride": 2,
    "batch_size": 32,
    "epochs": 20,
    "lr": 0.01,
    "horizon": 3,
    "progress": False,
}


def trending(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """A sensor creeping upwards with a 24-reading cycle: the test split sits above all training readings."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 0.05 * t + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"t": t.astype(float), "temp": y})


@pytest.fixture(scope="module")
def level_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        run = fit(
            trending(),
            task="forecast",
            target="temp",
            time_column="t",
            out=tmp_path_factory.mktemp("drift") / "level",
            target_mode="level",
            **SMALL,
        )
    return run, err.getvalue()


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return fit(
        trending(),
        task="forecast",
        target="temp",
        time_column="t",
        out=tmp_path_factory.mktemp("drift") / "auto",
        target_mode="auto",
        verbose=False,
        **SMALL,
    )


def test_a_level_model_on_a_trend_loses_and_says_so(level_run) -> None:
    run, stderr = level_run
    m = run.metrics["streaming"]
    assert m["beats_baselines"] is False and m["mae"] > 3 * m["baselines"]["persistence"]
    assert "does not beat" in m["warning"] and "--target-mode delta" in stderr and "WARNING" in stderr
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["metrics"]["streaming"]["beats_baselines"] is False
    assert set(summary["metrics"]["streaming"]["baselines"]) == {"persistence", "seasonal_naive", "drift"}
    assert summary["training"]["season"] == 24 and "detected" in summary["training"]["season_from"]


def test_auto_chooses_delta_on_a_trend_and_beats_every_baseline(auto_run: TrainResult) -> None:
    tm = auto_run.checkpoint.training["target_mode"]
    assert tm["requested"] == "auto" and tm["chosen"] == "delta" and "validation MAE" in tm["why"]
    assert auto_run.checkpoint.data.target_mode == "delta"
    m = auto_run.metrics["streaming"]
    assert m["skill"]["persistence"] > 0.1 and m["skill"]["drift"] > 0.1, m
    assert 0.7 <= m["interval_coverage"] <= 1.0  # intervals stay calibrated in the new representation


def test_the_losing_run_is_marked_in_the_bundle_and_inspect(level_run, tmp_path: Path, capsys) -> None:
    from edge_runtime.cli.inspect import quality_table
    from exporter import export_bundle

    m = export_bundle(level_run[0].run_dir, tmp_path / "b", formats="numpy", progress=False)
    assert m.quality["numpy-fp32"]["beats_baselines"] is False
    assert "does not beat" in m.quality["numpy-int8"]["warning"]
    table = quality_table(m)
    assert "LOSES to seasonal_naive" in table or "LOSES to persistence" in table or "LOSES to drift" in table
    assert "best baseline" in table


def test_baselines_on_known_series() -> None:
    # a stream reading z[t] = t with targets y[t] = (z[t+1], z[t+2]), after one reading of -1: a straight line,
    # so drift is exact and persistence lags by k
    z = np.arange(21, dtype=float)
    y = np.stack([z[1:-1], z[2:]], axis=1)  # (19, 2)
    context = np.array([[-1.0]])
    f = baselines.forecasts(y, context, 2, season=4)
    np.testing.assert_allclose(f["persistence"][5], [5.0, 5.0])  # reading 5 of the stream is z = 5
    np.testing.assert_allclose(f["drift"][5], [6.0, 7.0])
    np.testing.assert_allclose(f["seasonal_naive"][5], [2.0, 3.0])  # one season (4) before 6 and 7


def test_season_detection() -> None:
    t = np.arange(400)
    rng = np.random.default_rng(1)
    assert baselines.detect_season(0.02 * t + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.1, 400)) == 12
    assert baselines.detect_season(rng.normal(0, 1, 400)) is None


def test_a_noisy_short_trend_has_no_season() -> None:
    """Differencing noise around a trend leaves an alternation (autocorrelation -0.5 at lag 1, a peak at lag
    2); on a short series that peak is inside the Bartlett band and is not a season. ShampooSales' 22
    training months were called a 2-month season before (lag-2 autocorrelation 0.30, band 0.56)."""
    from aeon.datasets import load_shampoo_sales

    with pytest.warns(FutureWarning):
        shampoo = np.asarray(load_shampoo_sales(), np.float64)
    assert baselines.detect_season(shampoo[:22]) is None
    assert baselines.detect_season(shampoo) is None
    rng = np.random.default_rng(3)
    t = np.arange(30)
    found = [baselines.detect_season(5.0 * t + rng.normal(0, 20, 30)) for _ in range(50)]
    assert found.count(None) >= 45, found  # at most a 5% test's share of false seasons
    # a real cycle on as short a series is still found: three 8-reading cycles on a trend
    t = np.arange(24)
    assert baselines.detect_season(2.0 * t + 10 * np.sin(2 * np.pi * t / 8) + rng.normal(0, 1, 24)) == 8


@pytest.mark.parametrize("target_mode", ["level", "delta"])
def test_anomaly_false_alarms_on_a_drifting_sensor(target_mode: str, tmp_path: Path) -> None:
    """The threshold is set at 1% false alarms on validation. On the drifting test split a level model's
    residuals grow with the drift and it alarms on most readings; in delta mode the device's forecast moves
    with the level and the false-alarm rate stays near what was calibrated."""
    small = {k: v for k, v in SMALL.items() if k != "horizon"}
    run = fit(
        trending(),
        task="anomaly",
        target="temp",
        time_column="t",
        out=tmp_path / target_mode,
        target_mode=target_mode,
        false_alarm_rate=0.01,
        verbose=False,
        **small,
    )
    rate = run.metrics["streaming"]["false_alarm_rate"]
    if target_mode == "delta":
        assert rate <= 0.05, rate
    else:
        assert rate >= 0.3, rate


def _candidates(frame: pd.DataFrame, level_error: float, delta_error: float) -> dict:
    """auto's two candidates on `frame`, with validation forecasts off by the given constant errors."""
    from trainer.data import load
    from trainer.fitting import _Trained
    from trainer.prep import prepare

    table = load(frame, task="forecast", target="temp", features=None, time_column="t", series_column=None)
    out = {}
    for tm, err in (("level", level_error), ("delta", delta_error)):
        prep = prepare(table, task="forecast", target_mode=tm)
        raw = [y + err for y in prep.val.y_raw]
        out[tm] = _Trained(prep, None, None, None, [], {}, raw)  # type: ignore[arg-type]
    return out


def test_auto_takes_delta_when_validation_has_drifted_even_if_level_scores_better_there() -> None:
    from trainer.fitting import _choose_mode

    choice = _choose_mode(_candidates(trending(), level_error=0.1, delta_error=0.2), warmup=0, horizon=1)
    assert choice["chosen"] == "delta" and "drifted" in choice["why"]
    flat = trending().assign(temp=lambda d: d.temp - 0.05 * d.t)  # the same cycle without the trend
    choice = _choose_mode(_candidates(flat, level_error=0.1, delta_error=0.2), warmup=0, horizon=1)
    assert choice["chosen"] == "level" and "validation MAE 0.1 (level) vs 0.2 (delta)" in choice["why"]


def test_auto_keeps_level_without_drift_unless_delta_wins_clearly() -> None:
    """Lynx: 17 validation readings, no drift, delta 713 vs level 783 by chance; level was 129 vs delta 366 on
    the test years. Without drift delta must win a paired test, not just the average."""
    from trainer.automode import choose_mode, diebold_mariano, student_t_sf

    rng = np.random.default_rng(0)
    flat = rng.normal(0, 1, (200, 1))
    level = np.abs(rng.normal(0, 1.0, 17))
    noisy = level[::-1] * 0.9  # 10% lower on average, but reading by reading noise decides
    choice = choose_mode({"level": level, "delta": noisy}, 1, flat, flat[:17])
    assert choice["validation_mae"]["delta"] < choice["validation_mae"]["level"]
    assert choice["chosen"] == "level" and "not significant" in choice["why"] and choice["test"]["p_value"] >= 0.05
    clear = level * 0.5  # every reading's error halved
    choice = choose_mode({"level": level, "delta": clear}, 1, flat, flat[:17])
    assert choice["chosen"] == "delta" and "wins clearly" in choice["why"] and choice["test"]["p_value"] < 0.05
    moved = flat[:17] + 3.0  # drifted: delta whatever validation says
    choice = choose_mode({"level": clear, "delta": level}, 1, flat, moved)
    assert choice["chosen"] == "delta" and "drifted" in choice["why"] and choice["drift_std"] > 2
    # the tail probability against known values of Student's t (t(16) 95%: 1.746; t(4) 97.5%: 2.776)
    assert student_t_sf(1.746, 16) == pytest.approx(0.05, abs=2e-4)
    assert student_t_sf(-2.776, 4) == pytest.approx(0.975, abs=2e-4)
    stat, p = diebold_mariano(level, clear, 1)
    assert stat > 0 and p < 0.01

