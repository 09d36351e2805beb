"""`edgernn train --pool K`: trained on the means of K readings, exported, and streamed raw on the device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edge_runtime import Predictor
from edgernn.cli import main
from edgernn.errors import ConfigError, DataError
from tests.trainer import synth
from trainer.fitting import fit

QUIET: dict[str, Any] = {"progress": False, "verbose": False}
COLUMNS: dict[str, Any] = {"target": "activity", "series_column": "rec", "time_column": "t"}
POOL = 4


def test_a_pooled_model_streams_raw_readings_as_it_was_trained(tmp_path: Path) -> None:
    from exporter import export_bundle

    train, test = synth.recordings_frame(per_class=6, lengths=(9, 40), seed=2), synth.recordings_frame(3, (9, 40), 5)
    r = fit(train, test_data=test, task="classify", out=tmp_path / "run", hidden=8, epochs=3, pool=POOL,
            **COLUMNS, **QUIET)  # fmt: skip
    assert r.summary["training"]["pool"] == POOL
    # counted in model steps: each recording's full chunks of POOL readings
    steps = test.groupby("rec").size() // POOL
    assert r.summary["training"]["recordings"]["longest"] <= 40 // POOL
    ckpt = r.checkpoint
    export_bundle(tmp_path / "run", tmp_path / "bundle", formats=("numpy",), progress=False)
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["pool"] == POOL
    model = ckpt.build_model().eval()
    p = Predictor.load(tmp_path / "bundle", artifact="numpy-fp32")
    feats = ckpt.data.features
    right = 0
    for rec, g in test.groupby("rec", sort=True):
        p.reset()
        raw = g[feats].to_numpy(np.float64)
        made = [q for i, row in enumerate(raw) if (q := p.step_one(row.tolist(), t=float(g["t"].iloc[i])))]
        assert len(made) == steps[rec]  # one prediction per full chunk, none for the trailing part
        n = steps[rec] * POOL
        means = raw[:n].reshape(-1, POOL, len(feats)).mean(axis=1)  # (steps, C) what training stepped on
        x = torch.from_numpy(ckpt.data.scaler.transform(means.astype(np.float32))[None])
        with torch.no_grad():
            ref = torch.softmax(model(x)[0][0, -1], -1).numpy()
        np.testing.assert_allclose(made[-1].values, ref, atol=1e-5)
        right += made[-1].label == g["activity"].iloc[0]
    # the trainer's streamed test accuracy is the device's on the raw recordings
    assert r.summary["metrics"]["streaming"]["accuracy"] == pytest.approx(right / len(steps))


def test_a_bad_pool_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = synth.recordings_frame(per_class=4, lengths=(9, 20))
    with pytest.raises(ConfigError, match=r"pool must be a whole number of readings from 1 .* got 0"):
        fit(df, task="classify", out=tmp_path / "a", pool=0, **COLUMNS, **QUIET)
    with pytest.raises(DataError, match=r"pool 12: the training data has \d+ series shorter than 12 readings"):
        fit(df, task="classify", out=tmp_path / "b", pool=12, epochs=1, **COLUMNS, **QUIET)
    df.to_csv(tmp_path / "d.csv", index=False)
    rc = main(["train", "--data", str(tmp_path / "d.csv"), "--target", "activity", "--series-column", "rec",
               "--task", "classify", "--pool", "-2", "--out", str(tmp_path / "c")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "got -2" in err, err
    assert not (tmp_path / "c").exists()
