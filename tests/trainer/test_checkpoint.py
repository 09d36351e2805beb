"""The run directory: a weights-only checkpoint that rebuilds the model, heldout.npz, and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.trainer import synth
from tests.trainer.conftest import CliRun
from trainer.checkpoint import Heldout, load_checkpoint
from trainer.fitting import TrainResult, fit
from trainer.metrics import heldout_metrics


def _plain(o: object) -> bool:
    if isinstance(o, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in o.items())
    if isinstance(o, list):
        return all(_plain(v) for v in o)
    return type(o) in (int, float, str, bool, type(None), torch.Tensor)


def test_checkpoint_loads_weights_only_with_plain_containers(motion_cli_run: CliRun) -> None:
    raw = torch.load(motion_cli_run.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert set(raw) == {"format", "config", "state_dict", "data", "head", "metrics", "training", "provenance"}
    assert _plain(raw)
    prov = raw["provenance"]
    assert len(prov["data_sha256"]) == 64 and prov["seed"] == 0 and prov["versions"]["torch"] == torch.__version__
    assert raw["data"]["features"] == ["ax", "ay", "az", "gx", "gy", "gz"]


def _stepped_outputs(ckpt, heldout: Heldout) -> list[np.ndarray]:
    """What an exporter does with an artifact: scale each raw reading, step it, keep the state."""
    model = ckpt.build_model()
    outputs = []
    for i in range(len(heldout.x)):
        x, _ = heldout.stream(i)
        xs = x if ckpt.config.tokens else ckpt.data.scaler.transform(x).astype(np.float32)
        state = model.init_state(1)
        rows = []
        with torch.no_grad():
            for t in range(len(xs)):
                y, state = model(torch.from_numpy(xs[None, t : t + 1]), state)
                rows.append(y[0, 0].numpy())
        outputs.append(np.stack(rows))
    return outputs


@pytest.mark.parametrize("run", ["motion", "forecast", "anomaly", "chars"])
def test_rebuilt_model_reproduces_the_reported_streaming_metrics(run: str, request: pytest.FixtureRequest) -> None:
    """load_checkpoint(...).build_model(), stepped over heldout.npz, gives the figures in the report."""
    fixture = {"motion": "motion_cli_run", "forecast": "forecast_run", "anomaly": "anomaly_run", "chars": "char_run"}
    result = request.getfixturevalue(fixture[run])
    run_dir = result.run_dir
    ckpt = load_checkpoint(run_dir)
    heldout = Heldout.load(run_dir / "heldout.npz")
    again = heldout_metrics(ckpt, _stepped_outputs(ckpt, heldout), heldout)
    reported = {k: v for k, v in ckpt.metrics["streaming"].items() if k != "how"}
    assert set(again) == set(reported)
    for key, value in reported.items():
        if isinstance(value, str):  # the verdict against the baselines (names, a warning)
            assert again[key] == value, key
        else:
            assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_rebuilt_model_has_the_trained_weights(forecast_run: TrainResult) -> None:
    rebuilt = load_checkpoint(forecast_run.run_dir).build_model()
    for name, tensor in forecast_run.checkpoint.state_dict.items():
        torch.testing.assert_close(rebuilt.state_dict()[name], tensor, rtol=0, atol=0)
    x = torch.randn(2, 30, 2)
    ref, _ = forecast_run.checkpoint.build_model()(x)
    out, _ = rebuilt(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_heldout_is_raw_test_streams_with_per_reading_targets(
    forecast_run: TrainResult, motion_cli_run: CliRun
) -> None:
    h = Heldout.load(forecast_run.run_dir / "heldout.npz")
    assert h.x.shape == (1, 450, 2) and h.y.shape == (1, 450, 4) and h.lengths is None
    # raw units: temp is around 20, as in the CSV
    assert 15 < float(h.x[0, :, 0].mean()) < 25
    # y[t] holds temp at t+1 .. t+4; past the end of the test split: NaN
    np.testing.assert_allclose(h.y[0, :-1, 0], h.x[0, 1:, 0], rtol=1e-6)
    np.testing.assert_allclose(h.y[0, :-4, 3], h.x[0, 4:, 0], rtol=1e-6)
    assert np.isnan(h.y[0, -1]).all()
    m = Heldout.load(motion_cli_run.run_dir / "heldout.npz")
    assert m.x.shape == (3, 300, 6) and m.y.dtype == np.int64 and set(np.unique(m.y)) <= {0, 1, 2}
    assert 9 < float(m.x[..., 2].mean()) < 11  # az: gravity, raw


def test_sequences_heldout_records_lengths(tmp_path: Path) -> None:
    x, y = synth.motion_arrays(60, 20, unequal=True, seed=9)
    result = fit(
        (x, y),
        task="classify",
        out=tmp_path / "seq",
        hidden=8,
        epochs=1,
        split_order="file",
        progress=False,
        verbose=False,
    )
    h = Heldout.load(result.run_dir / "heldout.npz")
    assert h.lengths is not None and len(h.lengths) == len(h.x) == 9
    for i in range(len(h.x)):
        xi, yi = h.stream(i)
        np.testing.assert_array_equal(xi, x[51 + i])
        assert (yi[:-1] == -1).all() and yi[-1] == y[51 + i]  # the label is due at the end of the sequence


def test_rerun_replaces_the_run_directory_and_leaves_no_temporaries(tmp_path: Path) -> None:
    df = synth.periodic_frame(600)
    kw: dict[str, Any] = {
        "task": "forecast",
        "target": "temp",
        "time_column": "t",
        "window": 20,
        "hidden": 8,
        "epochs": 1,
        "progress": False,
        "verbose": False,
    }
    first = fit(df, out=tmp_path / "run", seed=1, **kw)
    second = fit(df, out=tmp_path / "run", seed=2, **kw)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["provenance"]["seed"] == 2 == second.checkpoint.provenance["seed"]
    assert first.run_dir == second.run_dir
