"""A task is a module of `trainer.tasks` and a line in its registry: a toy task registered here (and its name
added to the names a ModelConfig accepts) trains end to end with its own targets, loss and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgernn import config
from edgernn.config import ModelConfig
from tests.trainer import synth
from tests.trainer.conftest import QUIET
from trainer import fit
from trainer.table import Series
from trainer.tasks import TASKS, task_for
from trainer.tasks.base import Prep
from trainer.tasks.classify import Categorical


class Direction(Categorical):
    """Whether the target's next reading is above this one (class 1) or not (class 0)."""

    name = "direction"

    def describe(self, cfg: ModelConfig, n_targets: int) -> str:
        return "up or down next"

    def output_size(self, prep: Prep) -> int:
        return 2

    def targets(self, s: Series, prep: Prep) -> tuple[np.ndarray, np.ndarray]:
        assert s.target is not None
        y = np.full(len(s), -1, dtype=np.int64)  # the last reading has no next one
        y[:-1] = (s.target[1:, 0] > s.target[:-1, 0]).astype(np.int64)
        return y, y

    def scores(self, ckpt: Any, outs: list[np.ndarray], ys: list[np.ndarray], heldout: Any) -> dict[str, Any]:
        result = super().scores(ckpt, outs, ys, heldout)
        result["ups"] = int(sum(int((y == 1).sum()) for y in ys))
        return result


@pytest.fixture
def direction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TASKS, Direction.name, Direction)
    monkeypatch.setattr(config, "TASKS", (*config.TASKS, Direction.name))


def test_an_unknown_task_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"unsupported task 'direction'; supported: classify, forecast, anomaly"):
        task_for("direction")


def test_a_task_registered_in_one_place_trains_end_to_end(direction: None, tmp_path: Path) -> None:
    frame = synth.periodic_frame(1500, noise=0.02, seed=7)
    result = fit(
        frame,
        task="direction",
        target="temp",
        features=["temp"],
        time_column="t",
        out=tmp_path / "run",
        hidden=16,
        window=20,
        epochs=6,
        mode="stateful",
        batch_size=8,
        **QUIET,
    )
    assert result.summary["io"] == "up or down next"
    assert result.checkpoint.config.task == "direction" and result.checkpoint.config.output_size == 2
    streaming = result.metrics["streaming"]
    # its own figure, from its own targets: the test split's rising readings
    test_temp = frame["temp"].to_numpy()[-round(len(frame) * 0.15) :]
    assert streaming["ups"] == int((np.diff(test_temp) > 0).sum())
    # its loss is the cross-entropy of Categorical, and the direction of a smooth wave is learnt (always
    # "down", the majority, scores 0.59 here)
    assert streaming["accuracy"] >= 0.8, streaming
    assert "cross_entropy" in streaming
