"""One conformance suite, run on every backend x precision x cell x layers (river's `check_estimator` idea).

Bundles come from the real exporter (`exporter.export_bundle`), once per session, from untrained but
seeded models (parity does not need a trained model). TFLite conversion is slow, so only two of the
streaming bundles carry TFLite artifacts. Every check runs through the public `Predictor` or the
artifact's backend, the way a device runs it.
"""

from __future__ import annotations

import time
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
from trainer.model import RecurrentModel

FEATURES = ["ax", "ay", "az", "temp"]
MEAN = np.array([0.0, 1.0, -2.0, 20.0])
STD = np.array([1.0, 2.0, 0.5, 5.0])
WINDOW = 12

# name -> (cell, layers, bidirectional, tokens, formats)
BUNDLES: dict[str, tuple[str, int, bool, bool, tuple[str, ...]]] = {
    "rnn1": ("rnn", 1, False, False, ("onnx", "numpy")),
    "rnn2": ("rnn", 2, False, False, ("onnx", "numpy")),
    "lstm1": ("lstm", 1, False, False, ("onnx", "numpy")),
    "lstm2": ("lstm", 2, False, False, ("onnx", "tflite", "numpy")),
    "gru1": ("gru", 1, False, False, ("onnx", "tflite", "numpy")),
    "gru2": ("gru", 2, False, False, ("onnx", "numpy")),
    "gru2-bidir": ("gru", 2, True, False, ("onnx", "numpy")),
    "lstm1-tokens": ("lstm", 1, False, True, ("onnx", "numpy")),
    "gru1-mean": ("gru", 1, False, False, ("onnx", "tflite", "numpy")),
    "lstm2-mean": ("lstm", 2, False, False, ("onnx", "numpy")),
    "gru2-max": ("gru", 2, False, False, ("onnx", "tflite", "numpy")),
}
# readout "mean" / "max" (the running mean / maximum of the top layer's output, carried as state tensors)
READOUT = {"gru1-mean": "mean", "lstm2-mean": "mean", "gru2-max": "max"}
CASES = [
    pytest.param(name, f"{fmt}-{prec}", id=f"{name}-{fmt}-{prec}")
    for name, (*_, formats) in BUNDLES.items()
    for fmt in formats
    for prec in ("fp32", "int8")
]


@dataclass
class Case:
    name: str
    path: Path
    model: RecurrentModel
    stream: np.ndarray  # (L, C) raw readings or (L,) tokens


def _checkpoint(name: str) -> tuple[Checkpoint, Heldout]:
    cell, layers, bidir, tokens, _ = BUNDLES[name]
    torch.manual_seed(7)
    cfg = ModelConfig(
        cell=cell,
        input_size=0 if tokens else len(FEATURES),
        hidden_size=16,
        output_size=5 if tokens else 3,
        num_layers=layers,
        bidirectional=bidir,
        task="generate" if tokens else "classify",
        vocab_size=5 if tokens else 0,
        embedding_dim=3 if tokens else 0,
        readout=READOUT.get(name, "last"),
    )
    model = RecurrentModel(cfg).eval()
    rng = np.random.default_rng(11)
    if tokens:
        x = rng.integers(0, 5, size=(2, 48))
        data = DataSpec(["token"], Scaler("none", [0.0], [1.0]), {"min": [0.0], "max": [4.0]}, 10.0)
        data.vocabulary = list("abcde")
        y = np.roll(x, -1, axis=1)
    else:
        x = rng.normal(MEAN, STD, size=(2, 48, 4)).astype(np.float32)
        ranges = {"min": (MEAN - 3 * STD).tolist(), "max": (MEAN + 3 * STD).tolist()}
        data = DataSpec(FEATURES, Scaler("standard", MEAN.tolist(), STD.tolist()), ranges, 10.0)
        data.labels = ["idle", "walk", "run"]
        y = rng.integers(0, 3, size=(2, 48))
    training = {"window": WINDOW, "mode": "windows"} if bidir else {"mode": "stateful"}
    ckpt = Checkpoint(cfg, model.state_dict(), data, training=training)
    return ckpt, Heldout(x=x, y=y)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    from exporter import export_bundle

    root = tmp_path_factory.mktemp("conformance")
    out = {}
    for name, (*_, formats) in BUNDLES.items():
        ckpt, held = _checkpoint(name)
        export_bundle(ckpt, root / name, heldout=held, formats=formats, progress=False)
        out[name] = Case(name, root / name, ckpt.build_model(), held.x[0])
    return out


def _case(exported: dict[str, Case], name: str, artifact: str) -> tuple[Case, Predictor]:
    case = exported[name]
    return case, Predictor.load(case.path, artifact=artifact)


def _readings(case: Case, stream: np.ndarray | None = None) -> list:
    s = case.stream if stream is None else stream
    return [int(v) for v in s] if s.ndim == 1 else [r.tolist() for r in s]


def _tolerance(p: Predictor) -> float:
    return p.artifact.tolerance


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_streaming_equals_full_sequence_pytorch(exported, name, artifact):
    case, p = _case(exported, name, artifact)
    tokens = case.model.config.tokens
    scaled = case.stream if tokens else ((case.stream - MEAN) / STD).astype(np.float32)
    if p.manifest.mode == "window":
        preds = [made(p.step_one(r, t=0.1 * i)) for i, r in enumerate(_readings(case))]
        with torch.no_grad():
            for t in (WINDOW - 1, 30, len(scaled) - 1):
                y = case.model(torch.from_numpy(scaled[None, t - WINDOW + 1 : t + 1]))[0][0, -1]
                np.testing.assert_allclose(preds[t].values, torch.softmax(y, -1).numpy(), atol=_tolerance(p))
        return
    backend = p.backend
    state = backend.init_state(1)
    ys = []
    for v in scaled:
        y, state = backend.step(np.asarray([v]) if tokens else v[None], state)
        ys.append(y[0])
    with torch.no_grad():
        ref = case.model(torch.from_numpy(scaled[None]))[0][0].numpy()
    err = float(np.abs(np.array(ys) - ref).max())
    assert err <= _tolerance(p), f"{artifact}: max |streamed - PyTorch| = {err:.2e} > {_tolerance(p):g}"
    # and through the whole Predictor path: probabilities of the same logits
    preds = [made(p.step_one(r, t=0.1 * i)) for i, r in enumerate(_readings(case))]
    probs = torch.softmax(torch.from_numpy(ref), -1).numpy()
    np.testing.assert_allclose([q.values for q in preds], probs, atol=max(_tolerance(p), 1e-6))


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_step_many_equals_n_times_step_one(exported, name, artifact):
    case, many = _case(exported, name, artifact)
    one = Predictor.load(case.path, artifact=artifact)
    rng = np.random.default_rng(3)
    ids = ["a", "b", "c"]
    order = [rng.permutation(len(case.stream)) for _ in ids]  # three different streams
    for t in range(24):
        rows = [_readings(case)[order[k][t]] for k in range(3)]
        batch = many.step_many(np.asarray(rows), ids, t=0.1 * t)
        for k, sid in enumerate(ids):
            ref = one.step_one(rows[k], t=0.1 * t, stream=sid)
            got = batch[k]
            assert (got is None) == (ref is None)
            if ref is not None and got is not None:
                np.testing.assert_allclose(got.values, ref.values, atol=1e-5, err_msg=sid)
                assert (got.label, got.flags) == (ref.label, ref.flags)


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_streams_in_one_batch_do_not_leak(exported, name, artifact):
    case, alone = _case(exported, name, artifact)
    crowd = Predictor.load(case.path, artifact=artifact)
    rows = _readings(case)
    other = _readings(case, case.stream[::-1].copy())
    for t in range(20):
        a = alone.step_one(rows[t], t=0.1 * t, stream="x")
        batch = crowd.step_many(np.asarray([other[t], rows[t], other[-t - 1]]), ["y", "x", "z"], t=0.1 * t)
        if a is not None:
            np.testing.assert_allclose(made(batch[1]).values, a.values, atol=1e-5)


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_reset_restores_the_initial_state(exported, name, artifact):
    case, p = _case(exported, name, artifact)
    rows = _readings(case)
    first = [made(p.step_one(r, t=0.1 * i)) for i, r in enumerate(rows[:WINDOW])]
    for i, r in enumerate(rows[WINDOW:30]):
        p.step_one(r, t=0.1 * (i + WINDOW))
    p.reset()
    assert all(not a.any() for a in p.state())
    again = [made(p.step_one(r, t=3.0 + 0.1 * i)) for i, r in enumerate(rows[:WINDOW])]
    assert [q.values for q in again] == [q.values for q in first]


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_save_and_restore_round_trip_exactly(exported, name, artifact, tmp_path):
    case = exported[name]
    rows = _readings(case)
    p2 = Predictor.load(case.path, artifact=artifact, state_dir=tmp_path, device="d")
    now = time.time()
    for i, r in enumerate(rows[:30]):
        p2.step_one(r, t=now + 0.01 * i)
    p2.save_state()
    p3 = Predictor.load(case.path, artifact=artifact, state_dir=tmp_path, device="d")
    for u, v in zip(p2.state(), p3.state(), strict=True):
        np.testing.assert_array_equal(u, v)
    nxt = [made(p2.step_one(r, t=now + 0.3 + 0.01 * i)) for i, r in enumerate(rows[30:36])]
    back = [made(p3.step_one(r, t=now + 0.3 + 0.01 * i)) for i, r in enumerate(rows[30:36])]
    assert [q.values for q in nxt] == [q.values for q in back]


@pytest.mark.parametrize(("name", "artifact"), CASES)
def test_golden_vectors_pass(exported, name, artifact):
    case = exported[name]
    bundle = Bundle.open(case.path)
    r = {r.artifact: r for r in verify_golden(bundle)}[artifact]
    # this machine computes what the exporting laptop computed ...
    assert r.max_abs_dev is not None and r.tolerance is not None and r.max_abs_dev <= r.tolerance, r
    # ... and --verify passes exactly when export also measured the artifact within tolerance (an untrained
    # fixture's int8 can lose a point of accuracy by chance: then verify must say so, not pass)
    assert r.ok == (bundle.manifest.artifact(artifact).status == "ok"), r
    # the runtime's own scaling of the golden readings is the exporter's
    golden = bundle.golden()
    p = Predictor.load(case.path, artifact=artifact)
    if not case.model.config.tokens:
        ours = np.array([p.guard.scale_one(r) for r in golden["x"].tolist()], np.float32)
        np.testing.assert_allclose(ours, golden["x_scaled"], atol=1e-6)


def test_auto_picks_the_fastest_backend_once_and_caches_the_choice(exported, tmp_path, monkeypatch):
    from edge_runtime.bundle import select

    case = exported["lstm2"]  # onnx, tflite and numpy
    measured: list[str] = []
    real = select.measure

    def spy(backend, batch=1, budget_s=0.05):
        measured.append(backend.artifact.id)
        return real(backend, batch, budget_s)

    monkeypatch.setattr(select, "measure", spy)
    p = Predictor.load(case.path, backend="auto", precision="int8", state_dir=tmp_path)
    assert sorted(measured) == ["numpy-int8", "onnx-int8", "tflite-int8"]
    cache = (tmp_path / select.CACHE_FILE).read_text()
    assert p.artifact.id in cache
    again = Predictor.load(case.path, backend="auto", precision="int8", state_dir=tmp_path)
    assert again.artifact.id == p.artifact.id and len(measured) == 3  # from the cache, not measured again
    assert Predictor.load(case.path, backend="onnxruntime", precision="fp32").artifact.id == "onnx-fp32"
