"""Task heads: one per task, chosen once from the manifest; what `edgernn inspect` shows of a task comes from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime.bundle.loader import Bundle
from edge_runtime.cli.inspect import quality_table, summary
from edge_runtime.stream.heads import HEADS, head_for
from edgernn.errors import BundleError
from tests.edge_runtime.conftest import make_model, numpy_bundle

FORECAST = {"targets": ["ax", "temp"], "horizon": 1}
CASES = {  # task -> (model, output spec, inspect's quality columns, its output line)
    "classify": ({"output_size": 3}, None, ["accuracy", "macro F1"], "output   classify: labels c0, c1, c2"),
    "generate": (
        {"vocab_size": 6, "embedding_dim": 3, "output_size": 6},
        None,
        ["accuracy", "perplexity"],
        "output   generate: next token of 6",
    ),
    "forecast": (
        {"output_size": 2},
        FORECAST,
        ["MAE", "coverage", "best baseline", "skill"],
        "output   forecast: targets ax, temp, horizon 1",
    ),
    "anomaly": (
        {"output_size": 2},
        FORECAST | {"anomaly": {"threshold": 2.5}},
        ["AUC", "false alarms", "fcst MAE", "best baseline", "skill"],
        "output   anomaly: targets ax, temp, horizon 1; anomaly threshold 2.5000",
    ),
}


@pytest.mark.parametrize("task", list(CASES))
def test_each_task_has_its_head_and_inspect_shows_its_figures(tmp_path: Path, task: str) -> None:
    model_kw, output, columns, line = CASES[task]
    bundle = numpy_bundle(tmp_path / task, make_model(task=task, **model_kw), task=task, output=output)
    m = Bundle.open(bundle).manifest
    assert type(head_for(m)).task == task and set(HEADS) == set(CASES)
    header = quality_table(m).splitlines()[0].split()
    assert " ".join(header).startswith("artifact file size " + " ".join(columns) + " max|dev|"), header
    assert line in summary(m, str(bundle)).splitlines()


def test_an_unknown_task_names_the_supported_ones(tmp_path: Path) -> None:
    m = Bundle.open(numpy_bundle(tmp_path / "b", make_model())).manifest
    m.output.task = "regress"
    with pytest.raises(BundleError, match=r"output.task 'regress'; supported: classify, forecast, anomaly, generate"):
        head_for(m)
