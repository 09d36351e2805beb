"""Input pooling (`pool` K in the manifest): the model steps once per K readings after a reset, on their mean.

A bundle from the real exporter (an untrained, seeded GRU with readout "max": parity needs no training),
streamed raw reading by reading through `step_one`, `step_many` and `step_block`, must give at every K-th
reading exactly what the PyTorch model gives on the means of each K scaled readings, and nothing in between.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_runtime import Predictor
from edge_runtime.bundle.manifest import Manifest
from edgernn.config import ModelConfig
from edgernn.errors import BundleError
from tests.edge_runtime.conftest import made
from trainer.checkpoint import Checkpoint, DataSpec, Heldout, Scaler
from trainer.model import RecurrentModel

FEATURES = ["ax", "ay", "az", "temp"]
MEAN = np.array([0.0, 1.0, -2.0, 20.0])
STD = np.array([1.0, 2.0, 0.5, 5.0])
POOL = 4
ARTIFACTS = ["numpy-fp32", "numpy-int8", "onnx-fp32", "onnx-int8"]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RecurrentModel, np.ndarray]:
    from exporter import export_bundle

    torch.manual_seed(7)
    cfg = ModelConfig(cell="gru", input_size=4, hidden_size=16, output_size=3, task="classify", readout="max")
    model = RecurrentModel(cfg).eval()
    rng = np.random.default_rng(11)
    x = rng.normal(MEAN, STD, size=(2, 48, 4)).astype(np.float32)  # held-out model steps (pooled already)
    ranges = {"min": (MEAN - 4 * STD).tolist(), "max": (MEAN + 4 * STD).tolist()}
    data = DataSpec(FEATURES, Scaler("standard", MEAN.tolist(), STD.tolist()), ranges, 10.0)
    data.labels = ["idle", "walk", "run"]
    ckpt = Checkpoint(cfg, model.state_dict(), data, training={"mode": "stateful", "pool": POOL})
    out = tmp_path_factory.mktemp("pool") / "bundle"
    export_bundle(ckpt, out, heldout=Heldout(x=x, y=rng.integers(0, 3, size=(2, 48))), formats=("onnx", "numpy"))
    raw = rng.normal(MEAN, STD, size=(42, 4))  # 10 full pools and 2 readings of an 11th
    return out, ckpt.build_model(), raw


def _reference(model: RecurrentModel, raw: np.ndarray) -> np.ndarray:
    """Probabilities after each full pool: the model run on the means of K scaled readings."""
    scaled = (raw - MEAN) / STD
    steps = len(scaled) // POOL
    means = scaled[: steps * POOL].reshape(steps, POOL, -1).mean(axis=1).astype(np.float32)  # (steps, C)
    with torch.no_grad():
        y = model(torch.from_numpy(means[None]))[0][0]
    return torch.softmax(y, -1).numpy()


def test_manifest_carries_pool(pooled):
    path, _, _ = pooled
    assert json.loads((path / "manifest.json").read_text())["pool"] == POOL


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_streaming_steps_once_per_pool_and_equals_pytorch(pooled, artifact):
    path, model, raw = pooled
    p = Predictor.load(path, artifact=artifact)
    got = [p.step_one(r.tolist(), t=0.1 * i) for i, r in enumerate(raw)]
    made_at = [i for i, g in enumerate(got) if g is not None]
    assert made_at == list(range(POOL - 1, len(raw), POOL))  # every K-th reading, none in between
    ref = _reference(model, raw)
    np.testing.assert_allclose([made(got[i]).values for i in made_at], ref, atol=max(p.artifact.tolerance, 1e-6))
    c = p.counters
    assert c["readings"] == len(raw) and c["predictions"] == len(made_at) and c["skipped"] == 0


@pytest.mark.parametrize("artifact", ["numpy-fp32", "onnx-fp32"])
def test_step_many_and_step_block_equal_step_one(pooled, artifact):
    path, _, raw = pooled
    one = Predictor.load(path, artifact=artifact)
    many = Predictor.load(path, artifact=artifact)
    block = Predictor.load(path, artifact=artifact)
    ids = ["a", "b", "c"]
    late = 2  # stream "c" starts two readings later: its pool fills on other ticks
    rows = [raw, raw[::-1].copy(), raw[5:].copy()]
    ticks = 20
    ref: list[list] = []
    for t in range(ticks):
        ref.append([one.step_one(rows[k][t].tolist(), t=0.1 * t, stream=sid) if k < 2 or t >= late else None
                    for k, sid in enumerate(ids)])
    # step_many: "a" and "b" for the first ticks, then all three
    for t in range(ticks):
        k_run = [0, 1] if t < late else [0, 1, 2]
        batch = many.step_many(np.asarray([rows[k][t] for k in k_run]), [ids[k] for k in k_run], t=0.1 * t)
        for j, k in enumerate(k_run):
            want, got = ref[t][k], batch[j]
            assert (got is None) == (want is None), (t, ids[k])
            if want is not None:
                np.testing.assert_allclose(made(got).values, want.values, atol=1e-6)
    # step_block: the ticks before "c" starts, then the rest in one block
    block.step_block(np.stack([[rows[0][t], rows[1][t]] for t in range(late)]), ids[:2], 0.1 * np.arange(late))
    x = np.stack([[rows[k][t] for k in range(3)] for t in range(late, ticks)])  # (K, 3, C)
    batch = block.step_block(x, ids, 0.1 * np.arange(late, ticks))
    for t in range(late, ticks):
        for k in range(3):
            want, got = ref[t][k], batch[(t - late) * 3 + k]
            assert (got is None) == (want is None), (t, ids[k])
            if want is not None:
                np.testing.assert_allclose(made(got).values, want.values, atol=1e-6)
    for p in (many, block):
        assert p.counters["predictions"] == one.counters["predictions"] > 0


def test_checkpoint_restart_mid_pool(pooled, tmp_path):
    path, model, raw = pooled
    now = time.time()
    p = Predictor.load(path, artifact="numpy-fp32", state_dir=tmp_path, device="d")
    cut = 2 * POOL + 2  # two model steps and two readings in the pool
    for i in range(cut):
        p.step_one(raw[i].tolist(), t=now + 0.01 * i)
    p.save_state()
    q = Predictor.load(path, artifact="numpy-fp32", state_dir=tmp_path, device="d")
    rest = [(raw[i].tolist(), now + 0.01 * i) for i in range(cut, len(raw))]
    a = [p.step_one(r, t=t) for r, t in rest]
    b = [q.step_one(r, t=t) for r, t in rest]
    assert [g is None for g in a] == [g is None for g in b]
    assert b[POOL - 3] is not None and b[POOL - 3 - 1] is None  # the restored pool still holds two readings
    assert [g.values for g in a if g is not None] == [g.values for g in b if g is not None]
    ref = _reference(model, raw)
    np.testing.assert_allclose([g.values for g in b if g is not None], ref[2:], atol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4"])
def test_a_bad_pool_is_refused_in_one_line(pooled, bad):
    path, _, _ = pooled
    d = json.loads((path / "manifest.json").read_text())
    d["pool"] = bad
    with pytest.raises(BundleError) as e:
        Manifest.from_dict(d)
    msg = str(e.value)
    assert "\n" not in msg and "pool" in msg and "whole number from 1" in msg, msg


def test_pool_is_refused_where_readings_do_not_average(pooled):
    path, _, _ = pooled
    d = json.loads((path / "manifest.json").read_text())
    d["output"]["task"] = "forecast"
    with pytest.raises(BundleError, match=r"pool 4 for task 'forecast'; allowed: pool 1"):
        Manifest.from_dict(d)


def test_a_checkpoint_from_before_pooling_loads_with_empty_pools(pooled, tmp_path):
    path, _, raw = pooled
    now = time.time()
    p = Predictor.load(path, artifact="numpy-fp32", state_dir=tmp_path, device="d")
    for i in range(POOL + 2):  # one model step, two readings in the pool
        p.step_one(raw[i].tolist(), t=now + 0.01 * i)
    saved = p.save_state()
    assert saved is not None
    with np.load(saved) as z:
        old = {k: z[k] for k in z.files if k not in ("pool_sum", "pool_n")}  # as an earlier version wrote it
    with saved.open("wb") as f:
        np.savez(f, **old)
    q = Predictor.load(path, artifact="numpy-fp32", state_dir=tmp_path, device="d")
    for u, v in zip(p.state(), q.state(), strict=True):
        np.testing.assert_array_equal(u, v)  # the recurrent state is restored
    # the pool starts empty: the next prediction comes after POOL more readings, not after two
    got = [q.step_one(raw[i].tolist(), t=now + 0.01 * i) for i in range(POOL + 2, 2 * POOL + 2)]
    assert [g is not None for g in got] == [False] * (POOL - 1) + [True]
