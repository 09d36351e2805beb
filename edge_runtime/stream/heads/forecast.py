"""forecast: `y[k * n_targets + j]` = target j at t+1+k, scaled; raw units through `output.inverse`.

With `output.target_mode` "delta" the output is the change from reading t, and the reading's own value of
target j (an input feature) is added back: value = y * scale + offset + x_t[target j] ("level" mode adds
nothing). Interval = value +- `output.interval.half_width` (raw units, one per output). A rollout beyond
the horizon steps the model on its own forecasts. The one-row path is plain Python, the batch path NumPy.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from edge_runtime.backends.base import Backend
from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.guard import InputGuard
from edge_runtime.stream.heads.base import Fields, Head, Index, Subst, Vals
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import StreamTable
from edgernn.errors import BundleError, ConfigError


class ForecastHead(Head):
    task = "forecast"
    quality_columns: ClassVar[tuple[tuple[str, str], ...]] = (("mae", "MAE"), ("interval_coverage", "coverage"))
    baselines = True

    @classmethod
    def describe(cls, manifest: Manifest) -> str:
        return f"targets {', '.join(manifest.output.targets)}, horizon {manifest.output.horizon}"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        out, o = manifest.output, self.n_out
        feats = {f: i for i, f in enumerate(manifest.input.features)}
        self.targets = [feats[t] for t in out.targets if t in feats]
        self.n_targets = max(len(out.targets), 1)
        # inverse scaling tiled over the horizon, so output k * n_targets + j uses target j
        inv = out.inverse
        if inv is not None and len(inv.scale) * (o // max(len(inv.scale), 1)) == o:
            reps = o // len(inv.scale)
            self.inv_scale = [float(v) for v in inv.scale] * reps
            self.inv_offset = [float(v) for v in inv.offset] * reps
        else:
            self.inv_scale, self.inv_offset = [1.0] * o, [0.0] * o
        # delta mode: the input column of each output's target, whose raw reading is added back (level = None)
        self.level: list[int] | None = None
        if out.target_mode == "delta":
            missing = [t for t in out.targets if t not in feats]
            if missing or not out.targets:
                raise BundleError(f"invalid manifest: target_mode 'delta' needs targets among the inputs; {missing}")
            self.level = [feats[t] for t in out.targets] * (o // len(out.targets))
        self.inv_scale_arr64 = np.asarray(self.inv_scale, np.float64)
        self.inv_offset_arr64 = np.asarray(self.inv_offset, np.float64)
        hw = (out.interval or {}).get("half_width")
        self.half_width: list[float] | None = [float(v) for v in hw] if hw and len(hw) == o else None

    def one(self, pred: Prediction, y: np.ndarray, tab: StreamTable, s: int, vals: Vals, subst: Subst) -> None:
        tab.last_y[s] = y[0]
        pred.values = self.raw(y[0].tolist(), vals)
        pred.interval = self.interval(pred.values)

    def many(
        self, y: np.ndarray, tab: StreamTable, sel: Index, actual: np.ndarray, subst: dict[int, frozenset[int]]
    ) -> tuple[np.ndarray, Fields]:
        tab.last_y[sel] = y
        return self.raw_batch(y, actual), {"half_width": self.half_width}

    def block(self, y: np.ndarray, tab: StreamTable, sel: Index, x_raw: np.ndarray) -> tuple[np.ndarray, Fields]:
        tab.last_y[sel] = y[-1]
        flat = y.reshape(-1, y.shape[2])
        return self.raw_batch(flat, x_raw.reshape(len(flat), -1)), {"half_width": self.half_width}  # (K * N, O)

    # --- rollout -----------------------------------------------------------------------------------

    def check_rollout(self, k: int) -> None:
        if self.manifest.mode == "window":
            raise ConfigError("rollout steps the model on its own forecasts; window-mode bundles cannot")
        if k < 1:
            raise ConfigError(f"rollout k must be >= 1, got {k}")

    def rollout(
        self, k: int, tab: StreamTable, s: int, guard: InputGuard, backend: Backend
    ) -> tuple[list[float], list[list[float]] | None]:
        """Up to the model's horizon the direct forecast; beyond it the model is stepped on its own forecasts
        (targets fed back, other features held at their last values), from a copy of the stream's state."""
        self.check_rollout(k)
        n_t, horizon = self.n_targets, self.manifest.output.horizon
        y = tab.last_y[s : s + 1]
        values = self.raw(y[0].tolist(), tab.good(s))
        if k > horizon:
            if len(self.targets) != n_t:
                raise ConfigError(
                    f"rollout beyond the horizon ({horizon}) feeds forecasts back as inputs; the targets "
                    f"{self.manifest.output.targets} are not all input features {guard.features}"
                )
            values = values[:n_t]
            state = tuple(a[:, s : s + 1].copy() for a in tab.state)
            raw = np.array(tab.good(s), np.float64)
            while len(values) < k * n_t:
                raw[self.targets] = values[-n_t:]
                x = np.array([guard.scale_one(raw.tolist())], np.float32)
                y, state = backend.step(x, state)
                values += self.raw(y[0].tolist(), raw)[:n_t]  # delta: the change from the fed-back reading
        values = values[: k * n_t]
        return values, self.interval(values) if k <= horizon else None

    # --- the arithmetic ----------------------------------------------------------------------------

    def raw(self, y: list[float], reading: list[float] | np.ndarray | None = None) -> list[float]:
        """Model outputs -> raw forecasts; `reading` (C,) the raw input they were made at (delta mode's level)."""
        if self.level is None:
            return [v * s + o for v, s, o in zip(y, self.inv_scale, self.inv_offset, strict=True)]
        if reading is None:
            raise BundleError("a delta-mode forecast needs the reading it was made at")
        return [
            v * s + o + float(reading[i])
            for v, s, o, i in zip(y, self.inv_scale, self.inv_offset, self.level, strict=True)
        ]

    def raw_batch(self, y: np.ndarray, readings: np.ndarray | None = None) -> np.ndarray:
        """(N, O) outputs -> (N, O) raw forecasts; `readings` (N, C) raw inputs they were made at (delta mode)."""
        values = y.astype(np.float64) * self.inv_scale_arr64 + self.inv_offset_arr64
        if self.level is not None:
            if readings is None:
                raise BundleError("a delta-mode forecast needs the readings it was made at")
            values += readings[:, self.level]
        return values

    def interval(self, values: list[float]) -> list[list[float]] | None:
        """[low, high] per value; `values` may be the first few outputs only (a short rollout)."""
        if self.half_width is None:
            return None
        return [[v - h, v + h] for v, h in zip(values, self.half_width, strict=False)]
