"""The NumPy backend: the recurrent step in a few NumPy calls per layer, no other library.

Speed layout, derived at load from the weight file (`numpy_weights`):
- one matmul per layer: `[x, h, 1] @ W` with `W (In + H + 1, GW)`, the bias folded in as the last row;
- LSTM gates reordered to i, f, o, g and the sigmoid gates' weights halved, so one `tanh` over all gates
  gives every gate: `sigmoid(a) = 0.5 * tanh(a / 2) + 0.5` (halving is exact in floating point);
- GRU: r and z are `1 / (1 + exp(-a))` instead, their weights negated (exact) so the matmul gives `-a`:
  with z near 1 (a unit that remembers for long) the state moves by `(1 - z) * (n - h)`, and the tanh
  form's rounding of z biased that leak the same way at every reading; over a 3,600-reading stream (a
  vibration model fed faults far outside its training range) the state drifted 3e-5 from float64, against
  4e-6 for PyTorch's own fp32;
- GRU: `W` has 4H columns, r | z | n_x | n_h, because `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`
  needs the input and hidden parts of n apart; one wider matmul beats two matmuls and an add at the
  batch sizes a device sees;
- token models: the embedding is folded into layer 0's input weights, a lookup table `(V, GW)`;
- scratch buffers per batch size (per thread), views into them made once, every op writes in place.
At batch 1 the cost is Python and NumPy call overhead (~1 µs per call), not arithmetic, hence the fusing.
Window mode (bidirectional models) runs whole windows with the plain PyTorch-order weights instead.
readout "mean" / "max" (`ModelConfig.readout`): the head reads the running mean (state `m`, `n`) or maximum
(state `m`) of the top layer's output since the reset, carried like the recurrent state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend, State
from edge_runtime.backends.blas import single_threaded
from edge_runtime.backends.numpy_weights import load_weights
from edge_runtime.bundle.manifest import Artifact, Manifest
from edgernn.config import ModelConfig

_MAX_CACHED_BATCHES = 8


class _Layer:
    """One streaming layer's fused weights: `w (n_in + H + 1, GW)`, `table (V, GW)` for token input."""

    def __init__(self, n_in: int, w: np.ndarray, table: np.ndarray | None) -> None:
        self.n_in = n_in
        self.w = np.ascontiguousarray(w, np.float32)
        self.table = table


def _fuse(cell: str, wx: np.ndarray, wh: np.ndarray, bx: np.ndarray, bh: np.ndarray, h: int) -> np.ndarray:
    """PyTorch-order `wx (In, G*H)`, `wh (H, G*H)`, biases -> fused `(In + H + 1, GW)` in the speed layout."""
    n_in = wx.shape[0]
    if cell == "rnn":
        return np.concatenate([wx, wh, (bx + bh)[None]], axis=0)
    if cell == "lstm":
        gates = [slice(0, h), slice(h, 2 * h), slice(3 * h, 4 * h), slice(2 * h, 3 * h)]  # i, f, o, g
        cols = []
        for k, g in enumerate(gates):
            block = np.concatenate([wx[:, g], wh[:, g], (bx[g] + bh[g])[None]], axis=0)
            cols.append(block * 0.5 if k < 3 else block)
        return np.concatenate(cols, axis=1)
    # gru: r | z | n_x | n_h
    r, z, n = slice(0, h), slice(h, 2 * h), slice(2 * h, 3 * h)
    zeros_in, zeros_h = np.zeros((n_in, h), np.float32), np.zeros((h, h), np.float32)
    rz = [-np.concatenate([wx[:, g], wh[:, g], (bx[g] + bh[g])[None]], axis=0) for g in (r, z)]  # -a
    n_x = np.concatenate([wx[:, n], zeros_h, bx[n][None]], axis=0)
    n_h = np.concatenate([zeros_in, wh[:, n], bh[n][None]], axis=0)
    return np.concatenate([*rz, n_x, n_h], axis=1)


class _Scratch:
    """Per batch size: `[x, h, 1]` buffers per layer, gate buffers, and views into them made once."""

    def __init__(self, net: NumpyNet, batch: int) -> None:
        h = net.hidden
        self.xh: list[np.ndarray] = []
        self.z: list[np.ndarray] = []
        for layer in net.layers:
            xh = np.empty((batch, layer.n_in + h + 1), np.float32)
            xh[:, -1] = 1.0
            self.xh.append(xh)
            self.z.append(np.empty((batch, layer.w.shape[1]), np.float32))
        self.tmp = np.empty((batch, h), np.float32)
        # views: where each layer's input, hidden part and gates live
        self.x_in = [xh[:, : layer.n_in] for xh, layer in zip(self.xh, net.layers, strict=True)]
        self.h_in = [xh[:, layer.n_in : layer.n_in + h] for xh, layer in zip(self.xh, net.layers, strict=True)]
        self.gates = [[z[:, k * h : (k + 1) * h] for k in range(z.shape[1] // h)] for z in self.z]
        self.sig = [z[:, : 3 * h] if net.cell == "lstm" else z[:, : 2 * h] for z in self.z]


class NumpyNet:
    """The computation, from a `ModelConfig` and plain float32 weights (`numpy_weights.unpack_weights`)."""

    def __init__(self, config: ModelConfig, plain: dict[str, np.ndarray]) -> None:
        self.config = config
        self.cell = config.cell
        self.hidden = h = config.hidden_size
        self.plain = plain  # PyTorch-order weights, for window mode
        self.head_w = np.ascontiguousarray(plain["head.w"])  # (H*D, O)
        self.head_b = np.ascontiguousarray(plain["head.b"])  # (O,)
        self.layers: list[_Layer] = []
        if config.streamable:
            for layer in range(config.num_layers):
                wx, wh = plain[f"l{layer}.f.wx"], plain[f"l{layer}.f.wh"]
                w = _fuse(self.cell, wx, wh, plain[f"l{layer}.f.bx"], plain[f"l{layer}.f.bh"], h)
                table = None
                if layer == 0 and config.tokens:
                    n_in = wx.shape[0]
                    table = np.ascontiguousarray(plain["emb"] @ w[:n_in])  # (V, GW): embedding folded in
                    w = w[n_in:]
                self.layers.append(_Layer(w.shape[0] - h - 1, w, table))
        self._local = threading.local()

    def init_state(self, batch: int) -> State:
        shape = (self.config.num_layers * self.config.directions, batch, self.hidden)
        return tuple(np.zeros(shape, np.float32) for _ in self.config.state_names)

    def _scratch(self, batch: int) -> _Scratch:
        cache: dict[int, _Scratch] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        s = cache.get(batch)
        if s is None:
            if len(cache) >= _MAX_CACHED_BATCHES:
                cache.clear()
            s = cache[batch] = _Scratch(self, batch)
        return s

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """x (B, C) float32 or (B,) int tokens; state ((L, B, H),) or (h, c) -> y (B, O), new state."""
        if x.shape[0] == 1:  # OpenBLAS does not thread batch 1 anyway: spare the two calls
            return self._step(x, state)
        with single_threaded():
            return self._step(x, state)

    def _step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        s = self._scratch(x.shape[0])
        h_prev = state[0]
        h_new = np.empty_like(h_prev)
        lstm = self.cell == "lstm"
        if lstm:
            c_prev = state[1]
            c_new = np.empty_like(c_prev)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == 0 and layer.table is None:
                s.x_in[0][...] = x
            s.h_in[i][...] = h_prev[i]
            z = s.z[i]
            np.matmul(s.xh[i], layer.w, out=z)
            if layer.table is not None:
                z += layer.table[x]
            g = s.gates[i]
            out = h_new[i]
            if lstm:
                np.tanh(z, out=z)
                sig = s.sig[i]
                sig *= 0.5
                sig += 0.5  # i, f, o now sigmoids; g stays tanh
                c = c_new[i]
                np.multiply(g[1], c_prev[i], out=c)
                np.multiply(g[0], g[3], out=s.tmp)
                c += s.tmp
                np.tanh(c, out=s.tmp)
                np.multiply(g[2], s.tmp, out=out)
            elif self.cell == "gru":
                _sigmoid_negated(s.sig[i])  # r, z
                n = g[3]
                n *= g[0]
                n += g[2]
                np.tanh(n, out=n)
                np.subtract(h_prev[i], n, out=s.tmp)  # h' = n + z * (h - n)
                s.tmp *= g[1]
                np.add(n, s.tmp, out=out)
            else:
                np.tanh(z, out=out)
            if i < last:
                s.x_in[i + 1][...] = out
        new: State = (h_new, c_new) if lstm else (h_new,)
        top = h_new[last]  # (B, H)
        if self.config.readout == "mean":
            m_new, n_new = _running_mean(top, state[len(new)][-1], state[len(new) + 1][-1], len(self.layers))
            new = (*new, m_new, n_new)
            top = m_new[-1]
        elif self.config.readout == "max":
            m_new = np.repeat(np.maximum(state[len(new)][-1], top)[None], len(self.layers), axis=0)  # (L, B, H)
            new = (*new, m_new)
            top = m_new[-1]
        y = np.matmul(top, self.head_w)
        y += self.head_b
        return y, new

    # --- window mode: whole windows, any direction count --------------------------------------------

    def window(self, x: np.ndarray) -> np.ndarray:
        """x (B, T, C) float32 or (B, T) tokens -> y (B, O): the head on the window's last step."""
        with single_threaded():
            return self._window(x)

    def _window(self, x: np.ndarray) -> np.ndarray:
        cfg = self.config
        seq = self.plain["emb"][x] if cfg.tokens else np.asarray(x, np.float32)  # (B, T, In)
        for layer in range(cfg.num_layers):
            outs = [self._run_direction(seq, layer, d) for d in range(cfg.directions)]
            seq = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # (B, T, H*D)
        y = seq[:, -1] @ self.head_w
        return y + self.head_b

    def _run_direction(self, seq: np.ndarray, layer: int, d: int) -> np.ndarray:
        p = self.plain
        key = f"l{layer}.{'fr'[d]}"
        wh, bh = p[f"{key}.wh"], p[f"{key}.bh"]
        xp = seq @ p[f"{key}.wx"] + p[f"{key}.bx"]  # (B, T, G*H): every step's input part at once
        b, t_len, _ = seq.shape
        h = self.hidden
        hs = np.zeros((b, h), np.float32)
        cs = np.zeros((b, h), np.float32)
        out = np.empty((b, t_len, h), np.float32)
        for t in range(t_len - 1, -1, -1) if d else range(t_len):
            a, hh = xp[:, t], hs @ wh + bh
            if self.cell == "rnn":
                hs = np.tanh(a + hh)
            elif self.cell == "lstm":
                gates = a + hh
                i, f = _sigmoid(gates[:, :h]), _sigmoid(gates[:, h : 2 * h])
                g, o = np.tanh(gates[:, 2 * h : 3 * h]), _sigmoid(gates[:, 3 * h :])
                cs = f * cs + i * g
                hs = o * np.tanh(cs)
            else:
                r = _sigmoid(a[:, :h] + hh[:, :h])
                z = _sigmoid(a[:, h : 2 * h] + hh[:, h : 2 * h])
                n = np.tanh(a[:, 2 * h :] + r * hh[:, 2 * h :])
                hs = n + z * (hs - n)
            out[:, t] = hs
        return out


def _running_mean(h: np.ndarray, m: np.ndarray, n: np.ndarray, layers: int) -> tuple[np.ndarray, np.ndarray]:
    """readout "mean": h, m, n (B, H) -> m' = (m * n + h) / (n + 1), n' = n + 1, each repeated to (L, B, H),
    in the order of operations of `trainer.model` (the parity the golden vectors check)."""
    n_new = n + np.float32(1.0)
    m_new = (m * n + h) / n_new
    return np.repeat(m_new[None], layers, axis=0), np.repeat(n_new[None], layers, axis=0)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-a)), np.float32)


def _sigmoid_negated(neg: np.ndarray) -> None:
    """In place: -a -> sigmoid(a), keeping relative precision near 0 (see the module docstring). Four NumPy
    calls: at batch 1 each costs about a microsecond, more than its arithmetic."""
    # -a <= 80 keeps exp(-a) finite in float32 (no overflow warning; np.errstate costs more than this call),
    # and sigmoid(-80) = 2e-35 is 0 for any state it multiplies
    np.minimum(neg, 80.0, out=neg)
    np.exp(neg, out=neg)
    neg += 1.0
    np.reciprocal(neg, out=neg)


class NumpyBackend(Backend):
    """`numpy-fp32` / `numpy-int8` artifacts: `weights.npz` or `weights.int8.npz` (int8 weight-only)."""

    name = "numpy"

    def __init__(self, manifest: Manifest, artifact: Artifact, path: Path) -> None:
        super().__init__(manifest, artifact, path)
        self.net = NumpyNet(manifest.model, load_weights(path, manifest.model))

    @classmethod
    def from_arrays(cls, config: ModelConfig, arrays: dict[str, Any]) -> NumpyNet:
        """The computation straight from `pack_weights` output, without a bundle (tests, the exporter)."""
        from edge_runtime.backends.numpy_weights import check_shapes, unpack_weights

        plain = unpack_weights(arrays)
        check_shapes(plain, config)
        return NumpyNet(config, plain)

    def init_state(self, batch: int) -> State:
        return self.net.init_state(batch)

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        return self.net.step(x, state)

    def window(self, x: np.ndarray) -> np.ndarray:
        return self.net.window(x)
