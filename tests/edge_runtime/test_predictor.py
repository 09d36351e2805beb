"""Predictor: one reading at a time, state kept per stream, the whole path from raw reading to Prediction."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from edge_runtime import Policies, Predictor
from edgernn.errors import ConfigError, StateError
from tests.edge_runtime.conftest import FEATURES, OFFSET, SCALE, made, make_model, numpy_bundle

RAW = np.random.default_rng(3).normal(OFFSET, SCALE, size=(60, 4)).astype(np.float32)  # (L, C) raw readings


def _torch_outputs(model, raw: np.ndarray) -> np.ndarray:
    """The PyTorch model over the whole stream at once: (L, O) outputs from scaled readings."""
    scaled = (raw - np.asarray(OFFSET, np.float32)) / np.asarray(SCALE, np.float32)
    with torch.no_grad():
        return model(torch.from_numpy(scaled[None]))[0][0].numpy()


def _softmax(y: np.ndarray) -> np.ndarray:
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def lstm(tmp_path):
    model = make_model(cell="lstm", num_layers=2)
    return model, numpy_bundle(tmp_path / "b", model)


def test_step_one_dicts_match_pytorch_stream(lstm):
    model, bundle = lstm
    p = Predictor.load(bundle, backend="numpy")
    preds = [made(p.step_one(dict(zip(FEATURES, r.tolist(), strict=True)), t=i * 0.1)) for i, r in enumerate(RAW)]
    probs = np.array([q.values for q in preds])
    np.testing.assert_allclose(probs, _softmax(_torch_outputs(model, RAW)), atol=1e-5)
    assert [q.label for q in preds] == [f"c{k}" for k in probs.argmax(1)]
    assert preds[-1].probability == pytest.approx(probs[-1].max())
    assert all(q.flags == [] and q.latency_us > 0 and q.model == p.artifact.sha256[:12] for q in preds)


def test_step_many_equals_step_one_per_stream_and_streams_do_not_leak(lstm):
    _, bundle = lstm
    ids = ["a", "b", "c"]
    rng = np.random.default_rng(5)
    streams = rng.normal(OFFSET, SCALE, size=(3, 30, 4))
    many = Predictor.load(bundle, backend="numpy")
    one = Predictor.load(bundle, backend="numpy")
    for t in range(30):
        batch = many.step_many(streams[:, t], ids, t=float(t))
        for i, sid in enumerate(ids):
            ref = made(one.step_one(streams[i, t], t=float(t), stream=sid))
            got = made(batch[i])
            assert got.stream == sid and got.label == ref.label  # seq: the publisher's (tests/edge_runtime/publish)
            np.testing.assert_allclose(got.values, ref.values, atol=1e-6)
    # stream "b" alone gives the same as "b" among others
    alone = Predictor.load(bundle, backend="numpy")
    for t in range(30):
        last = made(alone.step_one(streams[1, t], t=float(t)))
    np.testing.assert_allclose(last.values, made(batch[1]).values, atol=1e-6)


def test_step_many_subset_and_new_streams_gather_and_scatter(lstm):
    _, bundle = lstm
    rng = np.random.default_rng(7)
    x = rng.normal(OFFSET, SCALE, size=(40, 6, 4))
    many, one = Predictor.load(bundle, backend="numpy"), Predictor.load(bundle, backend="numpy")
    for t in range(40):
        ids = [f"s{k}" for k in rng.permutation(6)[: rng.integers(1, 7)]]
        rows = np.array([x[t, int(s[1:])] for s in ids])
        got = many.step_many(rows, ids, t=float(t))
        for i, sid in enumerate(ids):
            np.testing.assert_allclose(
                made(got[i]).values, made(one.step_one(rows[i], t=float(t), stream=sid)).values, atol=1e-6
            )


def test_step_many_refuses_duplicate_stream_ids(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    with pytest.raises(ConfigError, match="distinct"):
        p.step_many(RAW[:2], ["a", "a"])


def test_bad_readings_never_raise_and_are_counted_by_reason(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    good = dict(zip(FEATURES, RAW[0].tolist(), strict=True))
    assert made(p.step_one(good, t=0.0)).flags == []
    cases = [
        ({k: v for k, v in good.items() if k != "az"}, ["held:az"]),
        (good | {"ax": float("nan")}, ["held:ax"]),
        (good | {"ax": math.inf}, ["held:ax"]),
        (good | {"ay": "n/a"}, ["held:ay"]),
        (good | {"ay": "1.5"}, []),  # a number sent as text is still a number
        (good | {"temp": 1e6}, ["out_of_range:temp"]),
        (good | {"humidity": 3}, ["extra:humidity"]),
        (None, ["held:ax", "held:ay", "held:az", "held:temp"]),
        ("garbage", ["held:ax", "held:ay", "held:az", "held:temp"]),
        ([1.0, 2.0], ["held:az", "held:temp"]),
    ]
    for i, (reading, flags) in enumerate(cases):
        pred = made(p.step_one(reading, t=0.1 * (i + 1)))
        assert pred is not None and pred.flags == flags, reading
        assert all(math.isfinite(v) for v in pred.values)
    # each reading counts once per reason it has
    assert p.counters["bad"] == {"missing": 4, "non_finite": 2, "non_number": 1, "out_of_range": 1, "extra": 1}
    assert p.counters["readings"] == p.counters["predictions"] == len(cases) + 1


def test_a_held_value_is_the_streams_last_good_one(lstm):
    a, b = Predictor.load(lstm[1], backend="numpy"), Predictor.load(lstm[1], backend="numpy")
    a.step_one(RAW[0], t=0.0)
    b.step_one(RAW[0], t=0.0)
    held = made(a.step_one([RAW[1, 0], np.nan, RAW[1, 2], RAW[1, 3]], t=0.1))
    same = made(b.step_one([RAW[1, 0], RAW[0, 1], RAW[1, 2], RAW[1, 3]], t=0.1))
    assert held.flags == ["held:ay"] and held.values == same.values


def test_time_policies_gap_resets_and_backwards_skips(lstm):
    p = Predictor.load(lstm[1], backend="numpy")  # sample rate 10/s: max gap 1 s
    for i in range(5):
        p.step_one(RAW[i], t=i * 0.1)
    fresh = made(Predictor.load(lstm[1], backend="numpy").step_one(RAW[5], t=0.0))
    after_gap = made(p.step_one(RAW[5], t=10.0))
    assert after_gap.flags[-1] == "state_reset" and after_gap.flags[0].startswith("gap:")
    np.testing.assert_allclose(after_gap.values, fresh.values, atol=1e-7)
    assert p.step_one(RAW[6], t=9.0) is None
    c = p.counters
    assert c["bad"] == {"gap": 1, "backwards": 1} and c["skipped"] == 1 and c["state_resets"] == 1


def test_policies_skip_and_impute(lstm):
    pol = Policies(missing="skip", non_finite="impute", out_of_range="skip")
    p = Predictor.load(lstm[1], backend="numpy", policies=pol)
    assert p.step_one(RAW[0][:3], t=0.0) is None
    pred = made(p.step_one([np.nan, *RAW[0][1:]], t=0.1))
    assert pred.flags == ["imputed:ax"]
    assert p.step_one([1e9, *RAW[0][1:]], t=0.2) is None
    assert p.counters["skipped"] == 2 and p.counters["predictions"] == 1
    with pytest.raises(ConfigError, match=r"policy missing='drop' is not allowed; choose one of: hold"):
        Policies(missing="drop")


def test_bad_rows_in_a_batch_take_the_slow_path_alone(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    x = RAW[:4].astype(np.float64).copy()
    x[2, 1] = np.nan
    preds = p.step_many(x, ["a", "b", "c", "d"], t=0.0)
    assert [made(q).flags for q in preds] == [[], [], ["imputed:ay"], []]  # no last value yet: the training mean
    assert p.counters["bad"] == {"non_finite": 1}


def test_warmup_flags_then_holds_when_asked(tmp_path):
    bundle = numpy_bundle(tmp_path / "b", make_model(), warmup=3)
    p = Predictor.load(bundle, backend="numpy")
    flags = [made(p.step_one(r, t=i * 0.1)).flags for i, r in enumerate(RAW[:5])]
    assert flags == [["warming_up"]] * 3 + [[], []]
    p.reset()
    assert made(p.step_one(RAW[5], t=0.6)).flags == ["warming_up"]
    held = Predictor.load(bundle, backend="numpy", policies={"warmup": "hold"})
    out = [held.step_one(r, t=i * 0.1) for i, r in enumerate(RAW[:5])]
    assert [o is None for o in out] == [True, True, True, False, False]
    assert held.counters["held_back"] == 3
    # held-back readings still advance the state: the 4th prediction equals the flagged one
    ref = Predictor.load(bundle, backend="numpy")
    flagged = [made(ref.step_one(r, t=i * 0.1)) for i, r in enumerate(RAW[:4])]
    assert made(out[3]).values == flagged[3].values
    batch = Predictor.load(bundle, backend="numpy", policies={"warmup": "hold"}).step_many(RAW[:2], ["a", "b"])
    assert list(batch) == [None, None]


def test_warmup_never_passes_for_a_stream_that_keeps_resetting(tmp_path):
    bundle = numpy_bundle(tmp_path / "b", make_model(), warmup=2)
    p = Predictor.load(bundle, backend="numpy")
    assert made(p.step_one(RAW[0], t=0)).flags == ["warming_up"]
    assert "warming_up" in made(p.step_one(RAW[1], t=100)).flags  # the gap reset it


def test_reset_restores_initial_state(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    first = made(p.step_one(RAW[0], t=0.0))
    for i, r in enumerate(RAW[1:10]):
        p.step_one(r, t=0.1 * (i + 1))
    p.reset("default")
    assert not any(a.any() for a in p.state("default"))
    again = made(p.step_one(RAW[0], t=1.1))
    assert again.values == first.values


def test_save_restore_round_trips_exactly(lstm, tmp_path):
    _, bundle = lstm
    state_dir = tmp_path / "state"
    a = Predictor.load(bundle, backend="numpy", state_dir=state_dir, device="d1")
    now = time.time()
    for i, r in enumerate(RAW[:20]):
        a.step_one(r, t=now + 0.1 * i, stream="x")
        a.step_many(RAW[i : i + 2], ["y", "z"], t=now + 0.1 * i)
    path = a.save_state()
    assert path == state_dir / "state-d1.npz" and not list(state_dir.glob(".*tmp"))
    b = Predictor.load(bundle, backend="numpy", state_dir=state_dir, device="d1")
    assert b.streams == ["x", "y", "z"]
    for s in b.streams:
        for u, v in zip(a.state(s), b.state(s), strict=True):
            np.testing.assert_array_equal(u, v)
    pa, pb = made(a.step_one(RAW[30], t=now + 2.05, stream="x")), made(b.step_one(RAW[30], t=now + 2.05, stream="x"))
    assert pa.values == pb.values


def test_checkpoints_every_n_steps_and_on_close(lstm, tmp_path):
    p = Predictor.load(lstm[1], backend="numpy", state_dir=tmp_path / "s", checkpoint_every=5)
    for i, r in enumerate(RAW[:12]):
        p.step_one(r, t=time.time() + i * 0.01)
    assert p.counters["checkpoints"] == 2
    p.close()
    assert p.counters["checkpoints"] == 3


def test_stale_or_foreign_state_is_reset_and_counted(lstm, tmp_path):
    _, bundle = lstm
    state_dir = tmp_path / "s"
    p = Predictor.load(bundle, backend="numpy", state_dir=state_dir)
    p.step_one(RAW[0])
    p.save_state()
    time.sleep(0.01)
    stale = Predictor.load(bundle, backend="numpy", state_dir=state_dir, max_state_age=0.005)
    assert stale.counters["stale_state"] == 1 and not stale.state("default")[0].any()
    other = numpy_bundle(tmp_path / "other", make_model(cell="lstm", num_layers=2, seed=1))
    foreign = Predictor.load(other, backend="numpy", state_dir=state_dir)
    assert foreign.counters["stale_state"] == 1 and foreign.streams == []


def test_forecast_values_interval_and_rollout_leave_state_alone(tmp_path):
    model = make_model(output_size=8, task="forecast", horizon=2)  # 4 targets x 2 steps
    inverse = {"kind": "standard", "offset": OFFSET, "scale": SCALE}
    out = {"targets": FEATURES, "horizon": 2, "inverse": inverse, "interval": {"level": 0.9, "half_width": [0.5] * 8}}
    bundle = numpy_bundle(tmp_path / "b", model, task="forecast", output=out)
    # the manifest loader expects a ScalerSpec: numpy_bundle writes JSON, so dicts round-trip
    p = Predictor.load(bundle, backend="numpy")
    for i, r in enumerate(RAW[:10]):
        pred = made(p.step_one(r, t=i * 0.1))
    y = _torch_outputs(model, RAW[:10])[-1]
    raw = y * np.tile(SCALE, 2) + np.tile(OFFSET, 2)
    np.testing.assert_allclose(pred.values, raw, atol=1e-4)
    assert pred.interval is not None and pred.interval[0] == pytest.approx([pred.values[0] - 0.5, pred.values[0] + 0.5])
    before = p.state()
    direct = p.rollout(2)
    assert direct.values == pytest.approx(pred.values) and direct.flags == ["rollout"]
    long = p.rollout(5)
    assert len(long.values) == 20 and long.values[:4] == pytest.approx(pred.values[:4])
    for u, v in zip(before, p.state(), strict=True):
        np.testing.assert_array_equal(u, v)
    # beyond the horizon: the model stepped on its own first forecast, by hand
    fed = np.asarray(pred.values[:4], np.float32)
    y2 = _torch_outputs(model, np.concatenate([RAW[:10], fed[None]]))[-1]
    np.testing.assert_allclose(long.values[4:8], (y2 * np.tile(SCALE, 2) + np.tile(OFFSET, 2))[:4], atol=1e-4)
    with pytest.raises(StateError, match="no readings"):
        p.rollout(3, stream="nobody")


def test_rollout_needs_a_forecast_model(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    with pytest.raises(ConfigError, match="forecast"):
        p.rollout(3)


def test_anomaly_score_follows_the_convention(tmp_path):
    model = make_model(output_size=2, task="anomaly")
    sigma = [0.5, 2.0]
    out = {
        "targets": ["ax", "temp"],
        "inverse": {"kind": "standard", "offset": [OFFSET[0], OFFSET[3]], "scale": [SCALE[0], SCALE[3]]},
        "anomaly": {"threshold": 1.0, "false_alarm_rate": 0.01, "score": "forecast-residual", "sigma": sigma},
    }
    bundle = numpy_bundle(tmp_path / "b", model, task="anomaly", output=out)
    p = Predictor.load(bundle, backend="numpy")
    preds = [made(p.step_one(r, t=i * 0.1)) for i, r in enumerate(RAW[:6])]
    assert preds[0].anomaly is None and preds[0].is_anomaly is None
    y = _torch_outputs(model, RAW[:6])
    fc = y * [SCALE[0], SCALE[3]] + [OFFSET[0], OFFSET[3]]  # (L, 2) raw forecasts of the next reading
    for t in range(1, 6):
        actual = RAW[t, [0, 3]]
        want = math.sqrt(np.mean(((actual - fc[t - 1]) / sigma) ** 2))
        assert preds[t].anomaly == pytest.approx(want, rel=1e-4)
        assert preds[t].is_anomaly == (want >= 1.0)
    # a target value that was not measured gives no score
    assert made(p.step_one([RAW[6, 0], RAW[6, 1], RAW[6, 2], None], t=0.6)).anomaly is None
    batch = Predictor.load(bundle, backend="numpy").step_many(RAW[:1], ["a"])
    assert made(batch[0]).anomaly is None


def test_window_mode_runs_the_last_window_of_a_bidirectional_model(tmp_path):
    model = make_model(cell="gru", num_layers=2, bidirectional=True)
    bundle = numpy_bundle(tmp_path / "b", model, window=8)
    p = Predictor.load(bundle, backend="numpy")
    preds = [made(p.step_one(r, t=i * 0.1)) for i, r in enumerate(RAW[:20])]
    assert preds[6].flags == ["warming_up"] and preds[7].flags == []
    for t in (7, 12, 19):
        want = _softmax(_torch_outputs(model, RAW[t - 7 : t + 1])[-1])
        np.testing.assert_allclose(preds[t].values, want, atol=1e-5)
    many = Predictor.load(bundle, backend="numpy")
    for t in range(20):
        batch = many.step_many(np.stack([RAW[t], RAW[19 - t]]), ["a", "b"], t=t * 0.1)
    np.testing.assert_allclose(made(batch[0]).values, preds[19].values, atol=1e-6)


def test_token_model_generates_labels(tmp_path):
    model = make_model(cell="lstm", vocab_size=7, embedding_dim=3, output_size=7, task="generate")
    bundle = numpy_bundle(tmp_path / "b", model, task="generate")
    p = Predictor.load(bundle, backend="numpy")
    toks = [1, "t2", {"token": 3}, 6]
    preds = [made(p.step_one(k, t=i * 0.1)) for i, k in enumerate(toks)]
    with torch.no_grad():
        y = model(torch.tensor([[1, 2, 3, 6]]))[0][0].numpy()
    np.testing.assert_allclose([q.values for q in preds], _softmax(y), atol=1e-5)
    assert str(preds[0].label).startswith("t")
    assert p.step_one(99, t=1.0) is None and p.step_one("zz", t=1.1) is None
    assert p.counters["bad"] == {"unknown_token": 2}


def test_restore_stream_puts_one_stream_back_to_its_checkpoint(lstm, tmp_path):
    p = Predictor.load(lstm[1], backend="numpy", state_dir=tmp_path, max_state_age=60)
    now = time.time()
    for i in range(5):
        p.step_many(RAW[i : i + 2], ["a", "b"], t=now + 0.1 * i)
    p.save_state()
    saved_a, saved_b = p.state("a"), p.state("b")
    for i in range(5, 9):
        p.step_many(RAW[i : i + 2], ["a", "b"], t=now + 0.1 * i)
    assert p.restore_stream("a") == "restored"
    for u, v in zip(p.state("a"), saved_a, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(p.state("b"), saved_b, strict=True))  # b kept running
    assert p.restore_stream("never-seen") == "no_checkpoint" and not p.state("never-seen")[0].any()
    p.max_state_age = 0.0
    assert p.restore_stream("b") == "stale" and not p.state("b")[0].any()
    assert p.counters["stale_state"] == 1


def test_step_many_takes_dicts_and_repairs_each_bad_one(lstm):
    p = Predictor.load(lstm[1], backend="numpy")
    good = [dict(zip(FEATURES, r.tolist(), strict=True)) for r in RAW[:3]]
    bad = {k: v for k, v in good[1].items() if k != "temp"}
    batch = p.step_many([good[0], bad, good[2]], ["a", "b", "c"], t=[0.0, 0.0, 0.0])
    assert [made(q).flags for q in batch] == [[], ["imputed:temp"], []]
    ref = Predictor.load(lstm[1], backend="numpy")
    assert made(batch[2]).values == pytest.approx(made(ref.step_one(good[2], t=0.0, stream="c")).values, abs=1e-6)
    assert p.counters["bad"] == {"missing": 1}


def test_device_ids_that_could_leave_the_state_dir_are_refused(lstm, tmp_path):
    with pytest.raises(ConfigError, match=r"device id '\.\./x'"):
        Predictor.load(lstm[1], backend="numpy", state_dir=tmp_path, device="../x")


def _anomaly_bundle(tmp_path):
    """An anomaly model on two of the four features: it keeps every per-stream field (last_y, prev_fc, last_good)."""
    out = {
        "targets": ["ax", "temp"],
        "inverse": {"kind": "standard", "offset": [OFFSET[0], OFFSET[3]], "scale": [SCALE[0], SCALE[3]]},
        "anomaly": {"threshold": 1.0, "false_alarm_rate": 0.01, "score": "forecast-residual", "sigma": [0.5, 2.0]},
    }
    return numpy_bundle(tmp_path / "anomaly", make_model(output_size=2, task="anomaly"), task="anomaly", output=out)


def _after_restart(live, restored, t: float) -> None:
    """What a user sees of one stream after a restart equals what the live predictor gives: the direct and the
    rolled-out forecast (last_y, last_good), a reading with a missing value (held at last_good) and its
    anomaly score (prev_fc), then the next clean reading."""
    for k in (1, 3):  # 3 > the horizon: stepped on its own forecasts, the other features held at last_good
        a, b = live.rollout(k, stream="x"), restored.rollout(k, stream="x")
        assert a.values == b.values and all(math.isfinite(v) for v in b.values), k
    gap = [RAW[40, 0], None, RAW[40, 2], RAW[40, 3]]  # ay missing: held at its last good value
    for i, reading in enumerate([gap, RAW[41]]):
        a, b = (
            made(live.step_one(reading, t=t + 0.1 * i, stream="x")),
            made(restored.step_one(reading, t=t + 0.1 * i, stream="x")),
        )
        assert b.flags == a.flags and b.values == a.values, i
        assert b.anomaly is not None and b.anomaly == a.anomaly, (
            i
        )  # scored against the forecast made before the restart


def test_a_restart_restores_every_per_stream_field_not_only_the_state(tmp_path):
    bundle = _anomaly_bundle(tmp_path)
    now = time.time()
    live = Predictor.load(bundle, backend="numpy", state_dir=tmp_path / "s", device="d1")
    for i, r in enumerate(RAW[:20]):
        live.step_one(r, t=now + 0.1 * i, stream="x")
    live.save_state()
    restored = Predictor.load(bundle, backend="numpy", state_dir=tmp_path / "s", device="d1")
    _after_restart(live, restored, now + 2.0)


def test_restore_stream_puts_back_every_per_stream_field(tmp_path):
    bundle = _anomaly_bundle(tmp_path)
    now = time.time()
    live = Predictor.load(bundle, backend="numpy", state_dir=tmp_path / "s", device="d1", max_state_age=60)
    other = Predictor.load(bundle, backend="numpy", state_dir=tmp_path / "s", device="d1", max_state_age=60)
    for i, r in enumerate(RAW[:20]):
        live.step_one(r, t=now + 0.1 * i, stream="x")
        other.step_one(RAW[59 - i], t=now + 0.1 * i, stream="x")  # another history for the same stream
    live.save_state()
    assert other.restore_stream("x") == "restored"  # its own history replaced by the checkpoint's
    _after_restart(live, other, now + 2.0)
