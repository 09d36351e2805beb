"""Small trained checkpoints for the exporter tests, built without the trainer's `fit`.

Each task gets synthetic streams with an easy, learnable structure, a few hundred Adam steps on short
windows (a second or two), a DataSpec with a scaler fit on the training streams, held-out streams of
200 readings, and the head settings the task needs (anomaly sigma/threshold, forecast interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgernn.config import ModelConfig
from trainer.checkpoint import Checkpoint, DataSpec, Heldout, Scaler
from trainer.model import RecurrentModel

HELDOUT_READINGS = 200
WARMUP = 10


@dataclass
class Streams:
    x: np.ndarray  # (S, L, C) raw float, or (S, L) int64 tokens
    y: np.ndarray  # (S, L) labels / next tokens, or (S, L, O) raw targets
    anomaly: np.ndarray | None = None


def _classify_streams(rng: np.random.Generator, s: int, n: int) -> Streams:
    t = np.arange(n)
    x = np.zeros((s, n, 3), np.float32)
    y = np.zeros((s, n), np.int64)
    for i in range(s):
        a = 0
        while a < n:
            b = min(n, a + int(rng.integers(30, 70)))
            k = int(rng.integers(0, 3))
            y[i, a:b] = k
            x[i, a:b, 0] = 2.0 * k + rng.normal(0, 0.6, b - a)
            x[i, a:b, 1] = np.sin((0.15 + 0.25 * k) * t[a:b]) + rng.normal(0, 0.2, b - a)
            x[i, a:b, 2] = rng.normal(0, 1.0, b - a)
            a = b
    return Streams(x * np.float32(3.0) + np.float32(10.0), y)


def _wave(rng: np.random.Generator, s: int, n: int) -> np.ndarray:
    t = np.arange(n + 2)[None, :]
    phase = rng.uniform(0, 6.28, (s, 1))
    f0 = 5.0 * np.sin(0.21 * t + phase) + 20.0 + rng.normal(0, 0.2, (s, n + 2))
    f1 = 2.0 * np.cos(0.21 * t + phase) + rng.normal(0, 0.2, (s, n + 2))
    return np.stack([f0, f1], axis=-1).astype(np.float32)  # (S, L + 2, 2)


def _forecast_streams(rng: np.random.Generator, s: int, n: int) -> Streams:
    w = _wave(rng, s, n)
    y = np.stack([w[:, 1 : n + 1, 0], w[:, 2 : n + 2, 0]], axis=-1)  # horizon 2 of target f0
    return Streams(w[:, :n], y.astype(np.float32))


def _anomaly_streams(rng: np.random.Generator, s: int, n: int, spikes: bool) -> Streams:
    w = _wave(rng, s, n)
    truth = np.zeros((s, n + 2), np.int8)
    if spikes:
        for i in range(s):
            at = rng.choice(np.arange(20, n), size=6, replace=False)
            w[i, at, 0] += rng.choice([-1.0, 1.0], size=6) * 4.0
            truth[i, at] = 1
    return Streams(w[:, :n], w[:, 1 : n + 1].copy(), truth[:, :n])


def _token_streams(rng: np.random.Generator, s: int, n: int) -> Streams:
    pattern = np.array([0, 1, 2, 3, 4, 5, 2, 3])
    start = rng.integers(0, len(pattern), s)
    tok = np.stack([pattern[(np.arange(n + 1) + k) % len(pattern)] for k in start])
    noise = rng.random(tok.shape) < 0.08
    tok = np.where(noise, rng.integers(0, 6, tok.shape), tok).astype(np.int64)
    return Streams(tok[:, :n], tok[:, 1:])


def _train(
    model: RecurrentModel, xs: torch.Tensor, ys: torch.Tensor, task: str, window: int, steps: int, seed: int
) -> None:
    """Adam on random training windows; loss on each reading after WARMUP (bidirectional: the last one)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    s, n = xs.shape[:2]
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, s, (32,), generator=g)
        starts = torch.randint(0, n - window, (32,), generator=g)
        idx = starts[:, None] + torch.arange(window)[None, :]
        xb, yb = xs[rows[:, None], idx], ys[rows[:, None], idx]
        out, _ = model(xb)
        keep = slice(window - 1, window) if model.config.bidirectional else slice(WARMUP, window)
        out, yb = out[:, keep], yb[:, keep]
        if task in ("classify", "generate"):
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
        else:
            loss = torch.nn.functional.mse_loss(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def make_checkpoint(
    cell: str,
    task: str,
    *,
    layers: int = 1,
    hidden: int = 16,
    bidirectional: bool = False,
    seed: int = 0,
    steps: int = 150,
    window: int = 32,
    ragged: bool = False,
) -> tuple[Checkpoint, Heldout]:
    """A trained checkpoint and its held-out streams for `task` in classify | forecast | anomaly | generate."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    gen = {
        "classify": lambda k, n: _classify_streams(rng, k, n),
        "forecast": lambda k, n: _forecast_streams(rng, k, n),
        "anomaly": lambda k, n: _anomaly_streams(rng, k, n, spikes=False),
        "generate": lambda k, n: _token_streams(rng, k, n),
    }[task]
    train = gen(16, 400)
    val = gen(4, HELDOUT_READINGS) if task == "anomaly" else None
    test = _anomaly_streams(rng, 4, HELDOUT_READINGS, spikes=True) if task == "anomaly" else gen(4, HELDOUT_READINGS)

    tokens = task == "generate"
    features = ["token"] if tokens else ["temp", "vib", "hum"][: train.x.shape[2]]
    if tokens:
        scaler = Scaler("none", [0.0], [1.0])
        ranges = {"min": [0.0], "max": [5.0]}
    else:
        flat = train.x.reshape(-1, train.x.shape[2])
        scaler = Scaler("standard", flat.mean(0).tolist(), flat.std(0).tolist())
        ranges = {"min": flat.min(0).tolist(), "max": flat.max(0).tolist()}
    labels, targets, target_scaler = [], [], None
    if task == "classify":
        labels = ["idle", "walk", "run"]
        out_size = 3
    elif tokens:
        out_size = 6
    else:
        targets = ["temp"] if task == "forecast" else ["temp", "vib"]
        t_idx = [features.index(t) for t in targets]
        target_scaler = Scaler("standard", [scaler.offset[i] for i in t_idx], [scaler.scale[i] for i in t_idx])
        out_size = len(targets) * (2 if task == "forecast" else 1)
    cfg = ModelConfig(
        cell=cell,
        input_size=0 if tokens else len(features),
        hidden_size=hidden,
        output_size=out_size,
        num_layers=layers,
        bidirectional=bidirectional,
        task=task,
        per_step=True,
        vocab_size=6 if tokens else 0,
        embedding_dim=4 if tokens else 0,
        horizon=2 if task == "forecast" else 1,
    )
    data = DataSpec(
        features=features,
        scaler=scaler,
        ranges=ranges,
        sample_rate=50.0,
        labels=labels,
        targets=targets,
        target_scaler=target_scaler,
        vocabulary=[*"abcdef"] if tokens else [],
    )

    def scaled_y(y: np.ndarray) -> np.ndarray:
        if target_scaler is None:
            return y
        h = cfg.horizon
        s = np.tile(np.asarray(target_scaler.scale, np.float32), h)
        o = np.tile(np.asarray(target_scaler.offset, np.float32), h)
        return ((y - o) / s).astype(np.float32)

    model = RecurrentModel(cfg)
    xs = torch.from_numpy(train.x if tokens else scaler.transform(train.x).astype(np.float32))
    _train(model, xs, torch.from_numpy(scaled_y(train.y)), task, window, steps, seed)

    head: dict = {}
    if target_scaler is not None:
        ref = val if val is not None else train
        with torch.no_grad():
            pred = model(torch.from_numpy(scaler.transform(ref.x).astype(np.float32)))[0].numpy()
        h = cfg.horizon
        raw = pred * np.tile(target_scaler.scale, h) + np.tile(target_scaler.offset, h)
        resid = (ref.y - raw)[:, WARMUP:].reshape(-1, out_size)
        if task == "forecast":
            head["interval"] = {"level": 0.9, "half_width": np.quantile(np.abs(resid), 0.9, axis=0).tolist()}
        else:
            sigma = resid.std(0)
            z = resid[:-1] / sigma
            scores = np.sqrt(np.mean(z**2, axis=1))
            head["anomaly"] = {
                "threshold": float(np.quantile(scores, 0.99)),
                "false_alarm_rate": 0.01,
                "score": "forecast-residual",
                "sigma": sigma.tolist(),
            }
    lengths = None
    if ragged:
        lengths = np.array([HELDOUT_READINGS, HELDOUT_READINGS - 50, HELDOUT_READINGS, HELDOUT_READINGS - 20])
        for i, n in enumerate(lengths):
            test.x[i, n:] = 0
            if test.y.dtype.kind == "i":
                test.y[i, n:] = -1
            else:
                test.y[i, n:] = np.nan
    heldout = Heldout(x=test.x, y=test.y, anomaly=test.anomaly, lengths=lengths)
    ckpt = Checkpoint(
        config=cfg,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        data=data,
        head=head,
        metrics={},
        training={"mode": "windows", "window": window, "warmup": WARMUP, "epochs": 1},
        provenance={"data_sha256": "synthetic", "seed": seed},
    )
    return ckpt, heldout
