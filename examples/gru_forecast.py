"""GRU forecaster: 60-step windows of 5 features, split by time (never shuffled across it), scaler fit on
the training split only; forecasts the next 3 values of `power`. On the device the held-out readings are
replayed one at a time and the forecasts compared with what happened, against persistence.

    python -m examples.gru_forecast [--out runs/examples]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from examples._common import export, parse_out

FEATURES = ["power", "temperature", "humidity", "occupancy", "hour_sin"]
HORIZON = 3


def building(readings: int, seed: int) -> pd.DataFrame:
    """A building's meter every minute: power follows occupancy and the outside temperature, with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(readings, dtype=np.float64) * 60.0
    day = 2 * np.pi * t / 86400.0 * 24  # a 'day' of 60 readings, so a short set holds many cycles
    occupancy = (np.sin(day - 1.0) > 0.2).astype(np.float64) + rng.normal(0, 0.05, readings)
    temperature = 12 + 6 * np.sin(day) + np.cumsum(rng.normal(0, 0.02, readings))
    humidity = 60 - 1.5 * (temperature - 12) + rng.normal(0, 1.0, readings)
    power = 2.0 + 3.0 * occupancy + 0.15 * np.abs(temperature - 18) + rng.normal(0, 0.15, readings)
    return pd.DataFrame(
        {"t": t, "power": power, "temperature": temperature, "humidity": humidity, "occupancy": occupancy,
         "hour_sin": np.sin(day)}
    )  # fmt: skip


def main(out: Path, quick: bool = False) -> dict[str, Any]:
    from edge_runtime import Predictor
    from trainer import fit

    frame = building(6000, seed=3)
    result = fit(
        frame,
        task="forecast",
        target="power",
        time_column="t",
        features=FEATURES,
        out=out / "gru_forecast",
        cell="gru",
        hidden=32,
        window=60,
        horizon=HORIZON,
        epochs=15 if quick else 25,
        progress=False,
        verbose=False,
    )
    bundle = out / "gru_forecast.bundle"
    export(result.run_dir, bundle)

    # On the device: replay the last 15% (the test split) one reading at a time, state carried.
    test = frame.iloc[int(len(frame) * 0.85) :]
    p = Predictor.load(bundle, backend="numpy")
    power = test["power"].to_numpy()
    errors, persistence = [], []
    for i, row in enumerate(test[FEATURES].to_dict("records")):
        pred = p.step_one(row, t=float(test["t"].iloc[i]))
        if pred is None or "warming_up" in pred.flags or i + HORIZON >= len(test):
            continue
        future = power[i + 1 : i + 1 + HORIZON]
        errors.append(np.abs(np.asarray(pred.values) - future).mean())
        persistence.append(np.abs(power[i] - future).mean())
    mae, base = float(np.mean(errors)), float(np.mean(persistence))
    print(f"GRU forecast on the device: MAE {mae:.3f} kW vs persistence {base:.3f} kW ({1 - mae / base:.0%} better)")
    print(f"the training report said MAE {result.metrics['streaming']['mae']:.3f} kW (streaming, held-out split)")
    return {"mae": mae, "persistence_mae": base, "bundle": str(bundle)}


if __name__ == "__main__":
    out, quick = parse_out(__doc__)
    main(out, quick)
