"""Conformance of delta-mode forecasts (`output.target_mode = "delta"`) on every backend and precision.

The model learns the change of `temp` from its latest reading; the runtime adds that reading back. Each check
runs the exported bundle through the public `Predictor` (step_one, step_many, step_block, rollout) and compares
it with PyTorch stepped over the same readings plus the level, the way the trainer and exporter score it.
The stream drifts far above the range the scaler saw, which is what delta mode is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_runtime import Predictor
from edge_runtime.bundle.golden import verify_golden
from edge_runtime.bundle.loader import Bundle
from edgernn.config import ModelConfig
from tests.edge_runtime.conftest import made
from trainer.checkpoint import Checkpoint, DataSpec, Heldout, Scaler
from trainer.metrics import heldout_metrics
from trainer.model import RecurrentModel
from trainer.tasks.forecast import to_raw

FEATURES = ["ax", "temp"]
MEAN = np.array([0.0, 20.0])
STD = np.array([1.0, 5.0])
DELTA_OFFSET, DELTA_SCALE = 0.1, 0.8  # statistics of the changes of temp
HORIZON = 2
FORMATS = ("onnx", "tflite", "numpy")
ARTIFACTS = [f"{f}-{p}" for f in FORMATS for p in ("fp32", "int8")]


@dataclass
class Case:
    path: Path
    model: RecurrentModel
    stream: np.ndarray  # (L, 2) raw readings, temp drifting upwards
    heldout: np.ndarray  # (2, L, 2) the held-out streams the exporter scored (stream is the first)


def _stream(seed: int, n: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    temp = 20.0 + 0.8 * np.arange(n) + rng.normal(0, 0.5, n)  # ends ~7 std above the training mean
    return np.stack([rng.normal(0, 1, n), temp], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    from exporter import export_bundle

    torch.manual_seed(5)
    cfg = ModelConfig(cell="gru", input_size=2, hidden_size=12, output_size=HORIZON, task="forecast", horizon=HORIZON)
    model = RecurrentModel(cfg).eval()
    x = np.stack([_stream(1), _stream(2)])
    y = np.full((2, x.shape[1], HORIZON), np.nan, np.float32)
    for k in range(HORIZON):
        y[:, : x.shape[1] - 1 - k, k] = x[:, 1 + k :, 1]
    data = DataSpec(
        FEATURES,
        Scaler("standard", MEAN.tolist(), STD.tolist()),
        {"min": (MEAN - 3 * STD).tolist(), "max": (MEAN + 3 * STD).tolist()},
        10.0,
        targets=["temp"],
        target_scaler=Scaler("standard", [DELTA_OFFSET], [DELTA_SCALE]),
        target_mode="delta",
    )
    ckpt = Checkpoint(
        cfg,
        model.state_dict(),
        data,
        head={"interval": {"level": 0.9, "half_width": [0.5, 0.9]}},
        training={"mode": "stateful", "season": None},
    )
    path = tmp_path_factory.mktemp("delta") / "bundle"
    export_bundle(ckpt, path, heldout=Heldout(x=x, y=y), formats=FORMATS, progress=False)
    return Case(path, model, x[0], x)


def _expected(case: Case, stream: np.ndarray) -> np.ndarray:
    """(L, HORIZON) raw forecasts: PyTorch over the whole stream, the change rescaled, plus the latest temp."""
    scaled = ((stream - MEAN) / STD).astype(np.float32)
    with torch.no_grad():
        out = case.model(torch.from_numpy(scaled[None]))[0][0].numpy()
    return to_raw(out, Scaler("standard", [DELTA_OFFSET], [DELTA_SCALE]), HORIZON, stream[:, [1]].astype(np.float64))


def _atol(p: Predictor) -> float:
    return p.artifact.tolerance * DELTA_SCALE + 1e-4  # float32 raw values near 60 carry ~4e-6 rounding


def test_the_manifest_records_delta_mode(case):
    assert Bundle.open(case.path).manifest.output.target_mode == "delta"


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_step_one_adds_the_latest_reading_back(case, artifact):
    p = Predictor.load(case.path, artifact=artifact)
    got = np.array([made(p.step_one(r.tolist(), t=0.1 * i)).values for i, r in enumerate(case.stream)])
    want = _expected(case, case.stream)
    np.testing.assert_allclose(got, want, atol=_atol(p))
    # the forecast follows the drift: far above anything a level model scaled on MEAN/STD could emit
    assert got[-1, 0] > 50.0


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_step_many_and_step_block_equal_step_one(case, artifact):
    one = Predictor.load(case.path, artifact=artifact)
    many = Predictor.load(case.path, artifact=artifact)
    block = Predictor.load(case.path, artifact=artifact)
    streams = np.stack([case.stream, _stream(9), case.stream[::-1].copy()], axis=1)  # (L, 3, C)
    ids = ["a", "b", "c"]
    ref = [
        [made(one.step_one(r.tolist(), t=0.1 * t, stream=sid)).values for sid, r in zip(ids, row, strict=True)]
        for t, row in enumerate(streams)
    ]
    got_many = [[made(e).values for e in many.step_many(row, ids, t=0.1 * t)] for t, row in enumerate(streams)]
    np.testing.assert_allclose(got_many, ref, atol=1e-5)
    b = block.step_block(streams, ids, 0.1 * np.arange(len(streams)))
    got_block = np.array([made(b[i]).values for i in range(len(b))]).reshape(len(streams), 3, HORIZON)
    np.testing.assert_allclose(got_block, ref, atol=1e-5)


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_rollout_and_intervals_in_delta_mode(case, artifact):
    p = Predictor.load(case.path, artifact=artifact)
    for i, r in enumerate(case.stream[:30]):
        last = made(p.step_one(r.tolist(), t=0.1 * i))
    direct = p.rollout(HORIZON)
    assert direct.values == pytest.approx(last.values) and direct.interval is not None
    want = [[v - h, v + h] for v, h in zip(last.values, [0.5, 0.9], strict=True)]
    np.testing.assert_allclose(direct.interval, want)
    # beyond the horizon: the forecast is fed back as the next reading, and the change is added to it
    before = p.state()
    far = p.rollout(5).values
    for u, v in zip(before, p.state(), strict=True):
        np.testing.assert_array_equal(u, v)  # rollout leaves the stream's state alone
    state = before
    reading = np.array(case.stream[29], np.float64)
    values = list(last.values[:1])
    while len(values) < 5:
        reading[1] = values[-1]
        y, state = p.backend.step(np.array([(reading - MEAN) / STD], np.float32), state)
        values.append(float(y[0, 0]) * DELTA_SCALE + DELTA_OFFSET + values[-1])
    np.testing.assert_allclose(far, values, atol=_atol(p))


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_quality_is_scored_with_the_level_added(case, artifact):
    """The bundle's MAE per artifact is the device's: it matches the predictions the Predictor makes."""
    m = Bundle.open(case.path).manifest
    errors = []
    for stream in case.heldout:
        p = Predictor.load(case.path, artifact=artifact)
        got = np.array([made(p.step_one(r.tolist(), t=0.1 * i)).values for i, r in enumerate(stream)])
        true = np.full_like(got, np.nan)
        for k in range(HORIZON):
            true[: len(got) - 1 - k, k] = stream[1 + k :, 1]
        errors.append(np.abs(got - true)[1:])  # reading 0 has no persistence forecast: not scored
    q = m.quality[artifact]
    assert q["mae"] == pytest.approx(float(np.nanmean(np.concatenate(errors))), abs=1e-4)
    assert {"persistence", "drift"} <= set(q["baselines"])
    assert q["mae"] < 5.0  # a level model would miss the drifting temp by tens of degrees


def test_golden_vectors_pass(case):
    results = verify_golden(Bundle.open(case.path))
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_heldout_metrics_add_the_level(case):
    """The trainer's scoring (what the summary and the manifest report) adds the same level."""
    m = Bundle.open(case.path).manifest
    ckpt = Checkpoint(
        m.model,
        case.model.state_dict(),
        DataSpec(
            FEATURES,
            Scaler("standard", MEAN.tolist(), STD.tolist()),
            {},
            targets=["temp"],
            target_scaler=Scaler("standard", [DELTA_OFFSET], [DELTA_SCALE]),
            target_mode="delta",
        ),
        training={},
    )
    want = _expected(case, case.stream)
    y = np.full_like(want, np.nan)
    for k in range(HORIZON):
        y[: len(y) - 1 - k, k] = case.stream[1 + k :, 1]
    scaled = ((case.stream - MEAN) / STD).astype(np.float32)
    with torch.no_grad():
        out = case.model(torch.from_numpy(scaled[None]))[0][0].numpy()
    result = heldout_metrics(ckpt, [out], Heldout(x=case.stream[None], y=y[None].astype(np.float32)))
    assert result["mae"] == pytest.approx(float(np.nanmean(np.abs(want - y)[1:])), rel=1e-6)
