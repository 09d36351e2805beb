"""generate: the next token of a token stream (a character-level language model and its kin).

Per-reading target: (L,) int64 the next token (-1 at the end).
"""

from __future__ import annotations

import numpy as np

from edgernn.config import ModelConfig
from trainer.table import Series
from trainer.tasks.base import Prep
from trainer.tasks.classify import Categorical


class GenerateTask(Categorical):
    name = "generate"
    accepts_tokens = True
    tokens_only = True
    perplexity = True

    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        return "next token"

    def output_size(self, prep: Prep) -> int:
        return len(prep.table.vocabulary)

    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        y = np.full(len(s), -1, dtype=np.int64)
        y[:-1] = s.x[1:]
        return y, y
