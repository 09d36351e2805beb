"""forecast: the next `horizon` readings of the target columns, scored against persistence, seasonal-naive
and drift baselines measured the same way.

Per-reading target: (L, horizon * n_targets), target j at t+1+k at column k * n_targets + j (NaN past the
split end). With target_mode "delta" the training target is the change of each target from reading t,
scaled by statistics of those changes; the raw target stays in raw units, which is what every report scores.
Head: interval half-widths = the 0.9 quantile of |residual| per output on the validation split (raw units).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.errors import DataError
from trainer import baselines
from trainer.checkpoint import Checkpoint, Heldout, Scaler
from trainer.table import Series
from trainer.tasks.base import Prep, Split, Task

if TYPE_CHECKING:
    import torch

INTERVAL_LEVEL = 0.9
VERDICT_KEYS = ("baselines", "skill", "best_baseline", "beats_baselines", "warning")  # see `verdict`


class ForecastTask(Task):
    name = "forecast"
    forecasts = True
    multi_step = True

    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        return f"next {cfg.horizon} of {n_targets} target(s)"

    def output_size(self, prep: Prep) -> int:
        return prep.horizon * len(prep.table.targets)

    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        assert s.target is not None and prep.target_scaler is not None
        n = len(s)
        nt = s.target.shape[1]
        raw = np.full((n, prep.horizon * nt), np.nan, dtype=np.float32)
        for k in range(prep.horizon):
            raw[: n - 1 - k, k * nt : (k + 1) * nt] = s.target[1 + k :]
        rel = raw.reshape(n, prep.horizon, nt)
        if prep.target_mode == "delta":
            rel = rel - s.target[:, None, :]  # the change from reading t
        scaled = prep.target_scaler.transform(rel).reshape(n, -1).astype(np.float32)
        return raw, scaled

    def loss(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        import torch

        valid = mask.unsqueeze(-1) & torch.isfinite(y)  # (B, T, O)
        n = int(valid.sum())
        if n == 0:
            return out.sum() * 0.0, 0
        diff = torch.where(valid, out - torch.nan_to_num(y), torch.zeros_like(out))
        return (diff**2).sum() / n, n

    def raw_and_baselines(
        self, ckpt: Checkpoint, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Heldout
    ) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
        """Held-out forecasts in raw units (L_i, O), and each baseline's forecasts of the same readings."""
        assert ckpt.data.target_scaler is not None
        horizon = ckpt.config.horizon
        raw = [
            to_raw(o, ckpt.data.target_scaler, horizon, level_of(ckpt, heldout.stream(i)[0]))
            for i, o in enumerate(outs)
        ]
        season = ckpt.training.get("season")
        ctx = heldout.context
        base = [baselines.forecasts(y, None if ctx is None else ctx[i], horizon, season) for i, y in enumerate(ys)]
        return raw, base

    def scores(
        self, ckpt: Checkpoint, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Heldout
    ) -> dict[str, Any]:
        raw, base = self.raw_and_baselines(ckpt, outs, ys, heldout)
        half = (ckpt.head.get("interval") or {}).get("half_width")
        return forecast_metrics(raw, ys, int(ckpt.training.get("warmup", 0)), ckpt.config.horizon, half, base)

    def windowed(self, results: list[tuple[Any, np.ndarray]], prep: Prep) -> dict[str, Any]:
        assert prep.target_scaler is not None
        errors = []
        for batch, out in results:
            b, t, o = out.shape
            pred = to_raw(out.reshape(b * t, o), prep.target_scaler, prep.horizon)
            true = to_raw(batch.y.reshape(b * t, o), prep.target_scaler, prep.horizon)
            ok = batch.mask.reshape(-1, 1) & np.isfinite(true)
            errors.append(np.abs(pred - true)[ok])
        err = np.concatenate(errors)
        return {"mae": float(err.mean()) if len(err) else None}

    def headline(self, metrics: dict[str, Any]) -> tuple[str, float | None]:
        return "mae", metrics.get("mae")

    def calibrate(
        self,
        val: Split,
        raw_outputs: list[np.ndarray],
        *,
        warmup: int,
        false_alarm_rate: float,
        false_alarms_per_day: float | None = None,
        rate: float | None = None,
    ) -> dict[str, Any]:
        res, finite = residuals(val, raw_outputs, warmup, normal_only=False)
        half = [float(np.quantile(np.abs(res[finite[:, j], j]), INTERVAL_LEVEL)) for j in range(res.shape[1])]
        return {"interval": {"level": INTERVAL_LEVEL, "half_width": half}}

    def check_head(self, ckpt: Checkpoint) -> str:
        cfg, data = ckpt.config, ckpt.data
        if not data.targets or data.target_scaler is None:
            return f"a {cfg.task} checkpoint needs target names and a target scaler; this one has none"
        if len(data.targets) * cfg.horizon != cfg.output_size:
            return f"{cfg.output_size} outputs do not match {len(data.targets)} targets x horizon {cfg.horizon}"
        return ""


def residuals(
    val: Split, raw_outputs: list[np.ndarray], warmup: int, normal_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(N, O) validation residuals in raw units (NaN where no target) and where they are finite;
    `normal_only`: only those whose reading t + 1 is normal."""
    found = []
    for s_rec, out, y in zip(val.series, raw_outputs, val.y_raw, strict=True):
        r = (y - out)[warmup:]  # (L - warmup, O): y[t] is reading t + 1, judged by the forecast made at t
        if normal_only and s_rec.anomaly is not None:
            r = r[np.append(s_rec.anomaly[1:], 0)[warmup:] == 0]  # reading t + 1 normal
        found.append(r)
    res = np.concatenate(found)
    finite = np.isfinite(res)
    if not finite.any(axis=0).all():
        raise DataError("the validation split is too short to calibrate the head: some outputs never have a target")
    return res, finite


def level_of(ckpt: Checkpoint, x_raw: np.ndarray) -> np.ndarray | None:
    """Delta mode: (L, n_targets) each target's latest raw reading (the level added back); None otherwise."""
    if ckpt.data.target_mode != "delta":
        return None
    return np.asarray(x_raw, np.float64)[:, ckpt.data.level_index()]


def to_raw(out: np.ndarray, target_scaler: Scaler, horizon: int, level: np.ndarray | None = None) -> np.ndarray:
    """Scaled forecast outputs (L, horizon * n_targets) -> raw units; output k * n_targets + j is target j.

    `level` (L, n_targets): delta mode, the latest reading of each target, added to every step of the horizon.
    """
    n = len(out)
    per = out.reshape(n, horizon, -1) * np.asarray(target_scaler.scale) + np.asarray(target_scaler.offset)
    if level is not None:
        per = per + level[:, None, :]
    return per.reshape(n, -1)


def forecast_metrics(
    raw: list[np.ndarray],
    ys: list[np.ndarray],
    warmup: int,
    horizon: int,
    half_width: list[float] | None,
    base: list[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """MAE in raw units, next to each baseline's MAE on the same readings (`trainer.baselines`).

    base: per stream, baseline name -> (L, O) forecasts; None: persistence only, from the targets themselves.
    """
    if base is None:
        base = [baselines.forecasts(y, None, horizon, None) for y in ys]
        base = [{"persistence": b["persistence"]} for b in base]
    names = list(base[0]) if base else ["persistence"]
    preds, trues = [], []
    bases: dict[str, list[np.ndarray]] = {name: [] for name in names}
    start = max(warmup, 1)  # reading 0 of a stream has no persistence forecast unless a context gives one
    for out, y, b in zip(raw, ys, base, strict=True):
        preds.append(out[start:])
        trues.append(y[start:])
        for name in names:
            bases[name].append(b[name][start:])
    pred, true = np.concatenate(preds), np.concatenate(trues)
    fc = {name: np.concatenate(v) for name, v in bases.items()}
    ok = np.isfinite(true) & np.isfinite(pred).all(axis=1, keepdims=True) & np.isfinite(fc["persistence"])
    if not ok.any():
        return {"readings": 0}
    err = np.abs(pred - true)
    mae = float(err[ok].mean())
    maes = {name: float(np.abs(f - true)[ok].mean()) for name, f in fc.items()}
    result: dict[str, Any] = {
        "readings": int(ok.any(axis=1).sum()),
        "mae": mae,
        "mae_per_output": [float(err[ok[:, j], j].mean()) for j in range(err.shape[1])],
        "persistence_mae": maes["persistence"],
        "skill_vs_persistence": _skill(mae, maes["persistence"]),
        **verdict(mae, maes),
    }
    if half_width is not None:
        result["interval_coverage"] = float((err <= np.asarray(half_width))[ok].mean())
        result["interval_level"] = INTERVAL_LEVEL
    return result


def verdict(mae: float, maes: dict[str, float]) -> dict[str, Any]:
    """Baseline MAEs, the model's skill against each (1 - MAE / baseline MAE: > 0 beats it), the best one,
    and whether the model beats it; `warning` says what to try when it does not."""
    best = min(maes, key=lambda k: maes[k])
    beats = mae < maes[best]
    out: dict[str, Any] = {
        "baselines": dict(maes),
        "skill": {name: _skill(mae, v) for name, v in maes.items()},
        "best_baseline": best,
        "beats_baselines": bool(beats),
    }
    if not beats:
        name = best.replace("_", " ")
        out["warning"] = f"the model does not beat the {name} baseline: MAE {mae:.4g} vs {maes[best]:.4g}"
    return out


def _skill(mae: float, base: float) -> float | None:
    return float(1.0 - mae / base) if base > 0 else None
