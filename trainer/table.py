"""The records every part of the trainer passes around: `Table` (a checked data set), its `Series`, and
`Tokens`; with the small helpers that name labels and hash data. No pandas, no torch: `data` (loading a
CSV / DataFrame) and `sequences` (arrays and tokens) both build on it, neither on the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.errors import ConfigError

DataLike = Any  # pd.DataFrame | str | Path | tuple[x, y] | Tokens


@dataclass
class Tokens:
    """Token input (the seed's character-level RNN and sentiment LSTM).

    `Tokens.from_text("...")` is one stream of characters (for `task="generate"`);
    `Tokens(sequences=[["a", "fine", "film"], ...], labels=["pos", ...])` are labelled token sequences.
    """

    sequences: list[list[str]]
    labels: Sequence[Any] | None = None
    stream: bool = False  # one long text: split by time rather than by sequence

    @classmethod
    def from_text(cls, text: str, level: str = "char") -> Tokens:
        if level == "char":
            toks = list(text)
        elif level == "word":
            toks = text.split()
        else:
            raise ConfigError(f"unsupported token level {level!r}; supported: char, word")
        return cls(sequences=[toks], stream=True)


@dataclass
class Series:
    """One recording. x (L, C) float32 raw features, or (L,) int64 tokens."""

    name: str
    x: np.ndarray
    t: np.ndarray  # (L,) float64 seconds, or the row index when there is no time column
    label: np.ndarray | None = None  # (L,) object: raw label per reading, None where unlabelled
    target: np.ndarray | None = None  # (L, n_targets) float32 raw target readings (forecast / anomaly)
    anomaly: np.ndarray | None = None  # (L,) int8 ground truth, when given

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Table:
    kind: str  # "streams" | "sequences"
    series: list[Series]
    features: list[str]
    targets: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)  # token models
    sample_rate: float | None = None
    sha256: str = ""
    dropped_rows: int = 0  # rows dropped for NaN/inf when drop_nan=True
    source: str = ""

    @property
    def tokens(self) -> bool:
        return bool(self.vocabulary)

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.series)


def as_list(v: str | list[str] | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else [str(x) for x in v]


def label_str(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))  # 1.0 and 1 name the same class
    return str(v.item() if isinstance(v, np.generic) else v)


def first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def sha_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha_arrays(seqs: list[np.ndarray], y: Any) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(np.ascontiguousarray(s).tobytes())
        h.update(str(s.shape).encode())
    if y is not None:
        h.update(repr([np.asarray(v).tolist() for v in y]).encode())
    return h.hexdigest()
