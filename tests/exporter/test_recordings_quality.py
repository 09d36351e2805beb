"""A bundle of a whole-recording classifier is measured as its training run was: each recording streamed from
a reset and judged at its last reading, with accuracy against the fraction of the recording seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import export_bundle
from tests.trainer import synth
from trainer.fitting import fit


def test_quality_table_scores_recordings_as_the_trainer_does(tmp_path: Path) -> None:
    df = synth.recordings_frame(per_class=10, lengths=(4, 30), seed=5)
    run = fit(
        df, task="classify", target="activity", series_column="rec", time_column="t", out=tmp_path / "run",
        hidden=8, epochs=6, progress=False, verbose=False,
    )  # fmt: skip
    manifest = export_bundle(tmp_path / "run", tmp_path / "bundle", formats="numpy", progress=False)
    trained = run.summary["metrics"]["streaming"]
    assert manifest.quality["pytorch"]["accuracy"] == pytest.approx(trained["accuracy"])
    for art in ("pytorch", "numpy-fp32", "numpy-int8"):
        q = manifest.quality[art]
        assert q["readings"] == trained["readings"] == 6, art  # one scored reading per test recording
        assert list(q["accuracy_by_fraction"]) == list(trained["accuracy_by_fraction"]), art
        assert q["accuracy_by_fraction"]["1.0"] == q["accuracy"], art
    assert manifest.quality["numpy-fp32"]["accuracy_by_fraction"] == pytest.approx(trained["accuracy_by_fraction"])
    # nothing after a reset is discarded: the device resets at each recording and reads the label at its end
    assert manifest.warmup["readings"] == 0 and not manifest.warmup["measured"]
    assert "whole recordings" in manifest.warmup["why"]
