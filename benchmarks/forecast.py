"""Real-data forecasting benchmark: `python -m benchmarks.forecast [--quick] [--out DIR]`.

Series: four classic public series shipped inside the installed aeon package (read from its files by aeon's own
loaders; nothing is downloaded) and two long synthetic series with a known noise-free signal:
    Airline        monthly air passengers 1949-1960, trend and a growing yearly cycle      (trending)
    ShampooSales   monthly shampoo sales over three years, trend                           (trending)
    Lynx           yearly Canadian lynx trappings 1821-1934, a ~10-year cycle              (stationary)
    solar          half-hourly GB solar generation over six days, a daily cycle            (stationary)
    synth-drift    a sensor creeping upwards with a daily cycle and noise                  (trending)
    synth-shifts   level shifts at random times on a cycle, with noise                     (trending)
Each is trained through the CLI (`edgernn train --target-mode auto`, time-ordered split), exported
(`edgernn export`), and every artifact is streamed one reading at a time through `edge_runtime.Predictor`, as a
device runs it: through the training and validation readings (not scored: they warm the state) and on into the
held-out test readings, every one of which with a next reading is scored. (The bundle's quality report streams
the test split from a reset and skips the warm-up after it; each row's `reset` keeps those figures, which the
quick test checks against the manifest.) Beside each artifact's MAE, on the same readings: persistence,
seasonal naive and drift (`trainer.baselines`, from the readings before each forecast), and statsmodels'
exponential smoothing (additive trend and season, fit on the train and validation readings, then filtered
through the test readings with its parameters fixed: the one-step forecast a user would otherwise deploy).
Synthetic series also report the noise floor: the MAE of the noise-free signal itself; stationary series also
the level model (`--target-mode level`, how edgernn forecast before delta mode; its NumPy fp32 artifact streamed
the same way), the figure auto must not fall behind.

`run(quick, out)` returns one row per series and artifact; `markdown(rows)` renders them as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HORIZON = 1  # one reading ahead: what a device publishes at every reading, and what ETS filters exactly
# name -> training settings (small models: the series are short, and CI runs the quick version)
SERIES: dict[str, dict[str, Any]] = {
    "Airline": {"kind": "trending", "season": 12, "window": 12, "hidden": 32, "epochs": 150, "lr": 0.01},
    "ShampooSales": {
        "kind": "trending",
        "season": None,
        "window": 4,
        "hidden": 16,
        "epochs": 150,
        "lr": 0.01,
        "warmup": 1,
        "split": 0.2,
    },  # 36 months: 7 for validation, 7 for test
    "Lynx": {"kind": "stationary", "season": 10, "window": 12, "hidden": 32, "epochs": 150, "lr": 0.01},
    "solar": {"kind": "stationary", "season": 48, "window": 36, "hidden": 32, "epochs": 100, "lr": 0.005},
    "synth-drift": {"kind": "trending", "season": 24, "window": 48, "hidden": 32, "epochs": 40, "lr": 0.005},
    "synth-shifts": {"kind": "trending", "season": 24, "window": 48, "hidden": 32, "epochs": 40, "lr": 0.005},
}
# --quick (the test suite's version): one trending series at the full benchmark's settings, NumPy artifacts only;
# it checks the pipeline and the skill (fewer epochs left the model a hair ahead of persistence once warmed)
QUICK: dict[str, dict[str, Any]] = {"Airline": {}}
NOISE = 0.3  # std of the synthetic series' noise
WARMUP = 4  # readings after the reset at the start of the test split that are not scored (for every method)


def load(name: str, readings: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(values (L,), noise-free signal (L,) or None) of one benchmark series."""
    if name.startswith("synth"):
        return synthetic(name, readings or 2000)
    from aeon import datasets

    loader = {
        "Airline": datasets.load_airline,
        "ShampooSales": datasets.load_shampoo_sales,
        "Lynx": datasets.load_lynx,
        "solar": datasets.load_solar,
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # aeon 1.6 deprecates load_shampoo_sales; the file is there
        return np.asarray(loader(), np.float64), None


def synthetic(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Known ground truth: a daily cycle of 24 readings plus a slow upward drift (synth-drift) or level shifts
    of +-1..4 every 150-400 readings on a slower drift (synth-shifts), plus N(0, NOISE) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    signal = 10.0 + 2.0 * np.sin(2 * np.pi * t / 24)
    if name == "synth-drift":
        signal += 0.01 * t
    else:
        signal += 0.003 * t
        at = 0
        while at < n:
            at += int(rng.integers(150, 400))
            signal[at:] += rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 4.0)
    return signal + rng.normal(0, NOISE, n), signal


def run(quick: bool, out: Path, series: list[str] | None = None) -> list[dict[str, Any]]:
    """Every series (or those named, or QUICK's), one row per series and artifact; also written to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, spec in SERIES.items():
        if (quick and name not in QUICK) or (series and name not in series):
            continue
        spec = {**spec, **(QUICK.get(name, {}) if quick else {})}
        rows += _series(name, spec, quick, out)
    (out / "forecast.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "forecast.md").write_text(markdown(rows) + "\n")
    return rows


def _series(name: str, spec: dict[str, Any], quick: bool, out: Path) -> list[dict[str, Any]]:
    from edge_runtime import Predictor
    from edge_runtime.bundle.manifest import Manifest
    from trainer.baselines import forecasts
    from trainer.checkpoint import Heldout

    values, signal = load(name, spec.get("readings"))
    csv = out / "data" / f"{name}.csv"
    csv.parent.mkdir(exist_ok=True)
    pd.DataFrame({"t": np.arange(len(values), dtype=float), "value": values}).to_csv(csv, index=False)
    run_dir, bundle = out / "runs" / name, out / "bundles" / name
    started = time.perf_counter()
    _train(csv, run_dir, spec, "auto")
    level_bundle = None
    if not quick and spec["kind"] == "stationary":  # the level model, as edgernn trained forecasts before
        _train(csv, out / "runs" / f"{name}-level", spec, "level")
        level_bundle = out / "bundles" / f"{name}-level"
        _cli("export", str(out / "runs" / f"{name}-level"), "--out", str(level_bundle), "--formats", "numpy")
    formats = "numpy" if quick else "onnx,tflite,numpy"
    _cli("export", str(run_dir), "--out", str(bundle), "--formats", formats, "--no-progress")
    seconds = time.perf_counter() - started

    summary = json.loads((run_dir / "summary.json").read_text())
    training = summary["training"]
    held = Heldout.load(run_dir / "heldout.npz")
    x, y = held.stream(0)  # one series: one held-out stream (the test split, the end of the series), raw units
    start = len(values) - len(x)
    ctx = held.context[0] if held.context is not None else None
    history = ctx[np.isfinite(ctx[:, 0]), 0] if ctx is not None else np.zeros(0)
    truth = y[:, 0]
    # the device runs on from validation into test, its state warmed by every reading before: every test
    # reading with a target is scored (the last one has none). The bundle's quality report instead streams the
    # test split from a reset and skips the warm-up readings after it; `reset` keeps those figures.
    ok = np.isfinite(truth)
    after_reset = ok & (np.arange(len(y)) >= max(int(training["warmup"]), 1))

    def mae(f: np.ndarray, scored: np.ndarray = ok) -> float:
        return float(np.abs(f[scored] - truth[scored]).mean())

    base = forecasts(y, ctx, HORIZON, training.get("season"))
    ets = _ets(history, x[:, 0], training.get("season"))
    tm = training["target_mode"]
    common = {
        "series": name,
        "kind": spec["kind"],
        "readings": int(ok.sum()),
        "train_readings": summary["split"]["readings"]["train"],
        "hidden": spec["hidden"],
        "window": spec["window"],
        "season": training.get("season"),
        "target_mode": tm["used"],
        "auto_why": tm.get("why", ""),
        "auto_p_value": (tm.get("test") or {}).get("p_value"),
        "persistence": mae(base["persistence"][:, 0]),
        "seasonal_naive": mae(base["seasonal_naive"][:, 0]) if "seasonal_naive" in base else None,
        "drift": mae(base["drift"][:, 0]),
        "ets": mae(ets),
        "level_model": None,
        "noise_floor": None,
        "seconds": round(seconds, 1),
        "reset": {
            "readings": int(after_reset.sum()),
            **{k: mae(f[:, 0], after_reset) for k, f in base.items()},
        },
    }
    if signal is not None:  # the noise-free next value: no forecaster can do better on average
        clean = np.full(len(x), np.nan)
        clean[:-1] = signal[start + 1 :]
        common["noise_floor"] = mae(clean)
    rows = []
    manifest = Manifest.load(bundle)
    rate = manifest.input.sample_rate or 1.0
    if level_bundle is not None:  # its NumPy fp32 artifact, streamed the same way
        p = Predictor.load(level_bundle, artifact="numpy-fp32")
        common["level_model"] = mae(_stream(p, values[:start], x, rate))
        p.close()
    for art in manifest.artifacts:
        if not art.usable:
            continue
        p = Predictor.load(bundle, artifact=art.id)
        warmed, reset = _stream(p, values[:start], x, rate), _stream(p, None, x, rate)
        p.close()
        model = mae(warmed)
        bases = {k: common[k] for k in ("persistence", "seasonal_naive", "drift") if common[k] is not None}
        best = min(bases, key=lambda k: bases[k])
        rows.append(
            {
                **common,
                "artifact": art.id,
                "mae": model,
                "best_baseline": best,
                "margin": 1.0 - model / bases[best],  # skill vs the best baseline: > 0 beats it
                "margins": {k: 1.0 - model / v for k, v in bases.items()},
                "margin_vs_ets": 1.0 - model / common["ets"],
                "beats_baselines": model < bases[best],
                "reset": {**common["reset"], "mae": mae(reset, after_reset)},
            }
        )
    return rows


def _stream(p: Any, before: np.ndarray | None, x: np.ndarray, rate: float) -> np.ndarray:
    """(L,) the Predictor's one-step forecast at each reading of `x` (L, F), from a reset, after stepping
    through `before` (Lb,) if given (univariate: the series' readings before `x`)."""
    p.reset()
    t0 = 0
    if before is not None:
        for t0, v in enumerate(before):
            p.step_one([float(v)], t=t0 / rate)
        t0 += 1
    pred = np.full(len(x), np.nan)
    for i, reading in enumerate(x):
        made = p.step_one(reading.tolist(), t=(t0 + i) / rate)
        if made is not None:
            pred[i] = made.values[0]
    return pred


def _train(csv: Path, run_dir: Path, spec: dict[str, Any], target_mode: str) -> dict[str, Any]:
    args = [
        "train", "--data", str(csv), "--time-column", "t", "--target", "value", "--task", "forecast",
        "--horizon", str(HORIZON), "--target-mode", target_mode, "--cell", "gru", "--hidden", str(spec["hidden"]),
        "--window", str(spec["window"]), "--epochs", str(spec["epochs"]), "--patience", "15", "--lr", str(spec["lr"]),
        "--warmup", str(spec.get("warmup", WARMUP)), "--val-fraction", str(spec.get("split", 0.15)),
        "--test-fraction", str(spec.get("split", 0.15)), "--mode", "windows", "--stride", "1", "--seed", "0",
        "--device", "cpu", "--out", str(run_dir), "--no-progress",
    ]  # fmt: skip
    if spec.get("season"):
        args += ["--season", str(spec["season"])]
    if spec.get("weight_decay"):
        args += ["--weight-decay", str(spec["weight_decay"])]
    _cli(*args)
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def _cli(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "edgernn", *args]  # OMP_NUM_THREADS=1 keeps torch on one thread
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"edgernn {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def _ets(history: np.ndarray, stream: np.ndarray, season: int | None) -> np.ndarray:
    """(L,) one-step forecasts of statsmodels' exponential smoothing made at each reading of `stream`.

    Fit on `history` (train and validation readings), then the fitted parameters filter history + stream, so
    the forecast at reading t uses the readings up to t only."""
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing

    seasonal = season if season and len(history) >= 3 * season else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short series
        fitted = ExponentialSmoothing(history, trend=True, seasonal=seasonal).fit(disp=False)
        both = fitted.apply(np.concatenate([history, stream]))
        one_step = np.asarray(both.predict())  # [i]: forecast of reading i from readings < i
    f = np.full(len(stream), np.nan)
    f[:-1] = one_step[len(history) + 1 :]  # made at stream reading t for t + 1
    return f


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per series and artifact: MAE of the model and of every comparison, on the same readings."""

    def f(v: Any) -> str:
        return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    def pct(r: dict[str, Any], k: str) -> str:
        return f"{100 * r['margins'][k]:+.1f}%" if k in r["margins"] else "-"

    head = (
        "| series | kind | artifact | auto chose | scored | model MAE | persistence | seasonal naive | drift | ETS | "
        "level model | noise floor | margin vs persistence | vs seasonal naive | vs drift |"
    )
    lines = [head, "|" + " --- |" * 4 + " ---: |" * 11]
    for r in rows:
        cells = [
            r["series"], r["kind"], r["artifact"], r["target_mode"], str(r["readings"]), f(r["mae"]),
            f(r["persistence"]), f(r["seasonal_naive"]), f(r["drift"]), f(r["ets"]), f(r["level_model"]),
            f(r["noise_floor"]), pct(r, "persistence"), pct(r, "seasonal_naive"), pct(r, "drift"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.forecast", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Airline only, NumPy artifacts only (what CI runs)")
    ap.add_argument("--out", default="bench/forecast", help="where data, runs, bundles and the table go")
    ap.add_argument("--series", help=f"comma-separated subset of: {', '.join(SERIES)}")
    ns = ap.parse_args(argv)
    chosen = [s.strip() for s in ns.series.split(",")] if ns.series else None
    unknown = sorted(set(chosen or []) - set(SERIES))
    if unknown:
        ap.error(f"unknown series {unknown}; known: {', '.join(SERIES)}")
    rows = run(ns.quick, Path(ns.out), chosen)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
