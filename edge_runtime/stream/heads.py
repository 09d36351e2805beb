"""Model outputs -> what a prediction says, per the task-head conventions every part of edgernn shares.

- classify / generate: `y` are logits -> softmax probabilities; label = the most probable name.
- forecast: `y[k * n_targets + j]` = target j at t+1+k, scaled -> raw units through `output.inverse`;
  with `output.target_mode` "delta" that is the change from reading t, and the reading's own value of
  target j (an input feature) is added back: value = y * scale + offset + x_t[target j];
  interval = value +- `output.interval.half_width` (raw units, one per output).
- anomaly: the model forecasts the next reading of its targets; the score at t is
  `sqrt(mean_j(((x_t[j] - xhat_t[j]) / sigma_j) ** 2))`, xhat_t the raw forecast made at t-1.

Each has a one-row path in plain Python (a handful of outputs: cheaper than NumPy's per-call overhead)
and a batch path in NumPy for `step_many`.
"""

from __future__ import annotations

import math

import numpy as np

from edge_runtime.bundle.manifest import Manifest
from edgernn.errors import BundleError

_PY_MAX_OUTPUTS = 32  # above this many outputs the one-row path uses NumPy too
_PY_ROWS = 4  # up to this many rows, probabilities_batch runs the one-row path per row
_COLUMNS_FROM = 512  # from this many rows, softmax column by column (see probabilities_batch)


class Postprocessor:
    def __init__(self, manifest: Manifest) -> None:
        out = manifest.output
        self.task = out.task
        o = manifest.model.output_size
        self.n_out = o
        self.classes = self.task in ("classify", "generate")
        self.labels = list(out.labels) or (list(manifest.input.vocabulary) if self.task == "generate" else [])
        if self.classes and self.labels and len(self.labels) != o:
            raise BundleError(f"invalid manifest: {len(self.labels)} labels for a model with {o} outputs")
        self.label_arr = np.asarray(self.labels or [str(i) for i in range(o)])
        # forecast / anomaly: inverse scaling tiled over the horizon, so output k*n_targets + j uses target j
        n_t = max(len(out.targets), 1)
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
            feats = list(manifest.input.features)
            missing = [t for t in out.targets if t not in feats]
            if missing or not out.targets:
                raise BundleError(f"invalid manifest: target_mode 'delta' needs targets among the inputs; {missing}")
            self.level = [feats.index(t) for t in out.targets] * (o // len(out.targets))
        self.inv_scale_arr64 = np.asarray(self.inv_scale, np.float64)
        self.inv_offset_arr64 = np.asarray(self.inv_offset, np.float64)
        hw = (out.interval or {}).get("half_width")
        self.half_width: list[float] | None = [float(v) for v in hw] if hw and len(hw) == o else None
        self.n_targets = n_t
        self.py = o <= _PY_MAX_OUTPUTS
        anomaly = out.anomaly or {}
        self.threshold = float(anomaly["threshold"]) if "threshold" in anomaly else math.inf
        sigma = anomaly.get("sigma") or [1.0] * n_t
        self.inv_sigma = [1.0 / max(float(s), 1e-12) for s in sigma]
        self.inv_sigma_arr = np.asarray(self.inv_sigma, np.float64)

    # --- one row -----------------------------------------------------------------------------------

    def probabilities(self, logits: list[float]) -> tuple[list[float], str, float]:
        m = max(logits)
        k = logits.index(m)  # the first maximum
        e = [math.exp(v - m) for v in logits]
        inv = 1.0 / sum(e)
        return [v * inv for v in e], self.labels[k] if self.labels else str(k), inv  # the label's exp is 1

    def probabilities_np(self, logits: np.ndarray) -> tuple[list[float], str, float]:
        e = np.exp(logits - logits.max())
        e /= e.sum()
        k = int(e.argmax())
        return e.tolist(), str(self.label_arr[k]), float(e[k])

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

    def interval(self, values: list[float]) -> list[list[float]] | None:
        """[low, high] per value; `values` may be the first few outputs only (a short rollout)."""
        if self.half_width is None:
            return None
        return [[v - h, v + h] for v, h in zip(values, self.half_width, strict=False)]

    def score(self, actual: list[float], forecast: list[float]) -> float:
        """Anomaly score of this reading's targets (raw) against the forecast made one reading ago."""
        acc = 0.0
        for a, f, w in zip(actual, forecast, self.inv_sigma, strict=True):
            acc += ((a - f) * w) ** 2
        return math.sqrt(acc / len(actual))

    # --- a batch of rows ---------------------------------------------------------------------------

    def probabilities_batch(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """logits (N, O) -> probabilities (N, O), label index (N,), probability of the label (N,).

        In float32 (the one-row path's float64 agrees to ~1e-7). Many rows with few outputs go column by
        column: a reduction along a short last axis costs NumPy far more per element than a few passes down
        the columns.
        """
        n, o = logits.shape
        if n <= _PY_ROWS and self.py:  # a handful of rows: the one-row path, row by row
            rows = logits.tolist()
            out = [self.probabilities(r) for r in rows]
            k_py = [r.index(max(r)) for r in rows]
            return np.array([r[0] for r in out]), np.array(k_py, np.intp), np.array([r[2] for r in out])
        z = logits.astype(np.float32)  # float32 exp is SIMD in NumPy, four times float64's speed
        if o > _PY_MAX_OUTPUTS or n < _COLUMNS_FROM:  # few rows: fewer NumPy calls matter more
            k = z.argmax(axis=1)
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            total = z.sum(axis=1)
        else:
            m = z[:, 0].copy()
            k = np.zeros(n, np.intp)
            for j in range(1, o):
                col = z[:, j]
                k[col > m] = j  # strictly greater: the first maximum wins, as in the one-row path
                np.maximum(m, col, out=m)
            z -= m[:, None]
            np.exp(z, out=z)
            total = z[:, 0].copy()
            for j in range(1, o):
                total += z[:, j]
        inv = 1.0 / total
        z *= inv[:, None]  # times the inverse, as the one-row path does
        return z, k, inv  # the label's exp is exp(0) = 1

    def raw_batch(self, y: np.ndarray, readings: np.ndarray | None = None) -> np.ndarray:
        """(N, O) outputs -> (N, O) raw forecasts; `readings` (N, C) raw inputs they were made at (delta mode)."""
        values = y.astype(np.float64) * self.inv_scale_arr64 + self.inv_offset_arr64
        if self.level is not None:
            if readings is None:
                raise BundleError("a delta-mode forecast needs the readings it was made at")
            values += readings[:, self.level]
        return values

    def score_batch(self, actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
        """(N, n_targets) raw actual and forecast -> (N,) scores; NaN where there was no forecast."""
        d = (actual - forecast) * self.inv_sigma_arr
        return np.sqrt(np.mean(d * d, axis=1))
