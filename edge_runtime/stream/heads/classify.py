"""classify: the outputs are logits -> softmax probabilities; the label is the most probable name.

The one-row path runs in plain Python (a handful of outputs: cheaper than NumPy's per-call overhead);
the batch path in NumPy float32, which agrees with it to ~1e-7.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.heads.base import Fields, Head, Index, Subst, Vals
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.table import StreamTable
from edgernn.errors import BundleError

_PY_MAX_OUTPUTS = 32  # above this many outputs the one-row path uses NumPy too
_PY_ROWS = 4  # up to this many rows, probabilities_batch runs the one-row path per row
_COLUMNS_FROM = 512  # from this many rows, softmax column by column (see probabilities_batch)


class ClassifyHead(Head):
    task = "classify"
    quality_columns: ClassVar[tuple[tuple[str, str], ...]] = (("accuracy", "accuracy"), ("macro_f1", "macro F1"))

    @classmethod
    def describe(cls, manifest: Manifest) -> str:
        return f"labels {', '.join(manifest.output.labels)}"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        o = self.n_out
        self.labels = self.label_names(manifest)
        if self.labels and len(self.labels) != o:
            raise BundleError(f"invalid manifest: {len(self.labels)} labels for a model with {o} outputs")
        self.label_arr = np.asarray(self.labels or [str(i) for i in range(o)])
        self.py = o <= _PY_MAX_OUTPUTS

    def label_names(self, manifest: Manifest) -> list[str]:
        return list(manifest.output.labels)

    def one(self, pred: Prediction, y: np.ndarray, tab: StreamTable, s: int, vals: Vals, subst: Subst) -> None:
        if self.py:
            pred.values, pred.label, pred.probability = self.probabilities(y[0].tolist())
        else:
            pred.values, pred.label, pred.probability = self.probabilities_np(y[0])

    def many(
        self, y: np.ndarray, tab: StreamTable, sel: Index, actual: np.ndarray, subst: dict[int, frozenset[int]]
    ) -> tuple[np.ndarray, Fields]:
        probs, k, p = self.probabilities_batch(y)
        return probs, {"label_index": k, "labels": self.labels, "probability": p}

    def block(self, y: np.ndarray, tab: StreamTable, sel: Index, x_raw: np.ndarray) -> tuple[np.ndarray, Fields]:
        return self.many(y.reshape(-1, y.shape[2]), tab, sel, x_raw, {})

    # --- the arithmetic --------------------------------------------------------------------------------

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
