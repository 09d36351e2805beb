"""The NumPy backend's weight file: `weights.npz` (fp32) or `weights.int8.npz` (int8 weight-only).

`pack_weights` turns a `RecurrentModel` state dict (as NumPy arrays) into the arrays of that file;
the exporter writes them with `np.savez`, the device reads them with `np.load(allow_pickle=False)`.
The file keeps PyTorch's gate order and only transposes to `(in, out)`, so it is easy to check by hand;
the speed layout (fused gates, folded biases) is derived from it at load time by `numpy_backend`.

Keys (`<l>` layer index, `<d>` direction: `f` forward, `r` reverse; G gates: rnn 1, lstm 4, gru 3):
    format            int64 scalar, WEIGHTS_FORMAT
    precision         "fp32" | "int8" (a 0-d unicode array)
    emb               (V, E) token embedding (token models only)
    l<l>.<d>.wx       (In, G*H) input weights, PyTorch gate order (lstm i,f,g,o; gru r,z,n)
    l<l>.<d>.wh       (H, G*H) hidden weights
    l<l>.<d>.bx, .bh  (G*H,) biases, always float32
    head.w            (H*D, O), head.b (O,)
int8 (symmetric, weight-only, per output channel): every weight matrix `k` above is stored as
`k.q` int8 plus `k.s` float32 scales, one per output column (per row for `emb`), `w = q * s`.
Biases stay float32. The runtime dequantizes once at load, so an int8 bundle is 4x smaller on disk
and computes exactly what the PyTorch model with the dequantized weights computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.errors import BundleError, ConfigError

WEIGHTS_FORMAT = 1
#: file name inside a bundle, by precision
WEIGHTS_FILE: dict[str, str] = {"fp32": "weights.npz", "int8": "weights.int8.npz"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_DIRS = ("f", "r")


def _np(value: Any) -> np.ndarray:
    """A torch tensor or array-like as a float32 NumPy array (no torch import needed)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per column of `w (In, Out)`: returns q (In, Out) int8 and scales (Out,) float32."""
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def pack_weights(state_dict: Mapping[str, Any], config: ModelConfig, precision: str = "fp32") -> dict[str, np.ndarray]:
    """`RecurrentModel.state_dict()` (tensors or arrays) -> the arrays of the NumPy weight file."""
    if precision not in WEIGHTS_FILE:
        raise ConfigError(f"unsupported precision {precision!r}; supported: {', '.join(WEIGHTS_FILE)}")
    sd = {k: _np(v) for k, v in state_dict.items()}
    plain: dict[str, np.ndarray] = {}
    if config.tokens:
        plain["emb"] = sd["embedding.weight"]
    for layer in range(config.num_layers):
        for d in range(config.directions):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            key = f"l{layer}.{_DIRS[d]}"
            plain[f"{key}.wx"] = sd[f"rnn.weight_ih_{sfx}"].T
            plain[f"{key}.wh"] = sd[f"rnn.weight_hh_{sfx}"].T
            plain[f"{key}.bx"] = sd[f"rnn.bias_ih_{sfx}"]
            plain[f"{key}.bh"] = sd[f"rnn.bias_hh_{sfx}"]
    plain["head.w"] = sd["head.weight"].T
    plain["head.b"] = sd["head.bias"]

    out: dict[str, np.ndarray] = {
        "format": np.asarray(WEIGHTS_FORMAT, np.int64),
        "precision": np.asarray(precision),
    }
    for key, arr in plain.items():
        if precision == "int8" and arr.ndim == 2:
            # the embedding's output channels are its rows: quantize its transpose by column
            q, s = quantize_columns(arr.T if key == "emb" else arr)
            out[f"{key}.q"] = np.ascontiguousarray(q.T if key == "emb" else q)
            out[f"{key}.s"] = s
        else:
            out[key] = np.ascontiguousarray(arr, dtype=np.float32)
    check_shapes(unpack_weights(out), config)
    return out


def unpack_weights(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weight file's arrays -> plain float32 matrices (int8 ones dequantized), keyed without `.q`/`.s`."""
    fmt = int(arrays["format"]) if "format" in arrays else None
    if fmt != WEIGHTS_FORMAT:
        raise BundleError(f"NumPy weight format {fmt!r} is not supported (this edgernn reads {WEIGHTS_FORMAT})")
    plain: dict[str, np.ndarray] = {}
    for key in arrays:
        if key in ("format", "precision") or key.endswith(".s"):
            continue
        if key.endswith(".q"):
            base = key[:-2]
            q = arrays[key].astype(np.float32)
            s = arrays[base + ".s"].astype(np.float32)
            plain[base] = q * s[:, None] if base == "emb" else q * s[None, :]
        else:
            plain[key] = np.asarray(arrays[key], np.float32)
    return plain


def check_shapes(plain: Mapping[str, np.ndarray], config: ModelConfig) -> None:
    """Refuse weights that do not fit `config`, naming the first array that is off."""
    gh = GATES[config.cell] * config.hidden_size
    h, dirs = config.hidden_size, config.directions
    want: dict[str, tuple[int, ...]] = {}
    if config.tokens:
        want["emb"] = (config.vocab_size, config.embedding_dim)
    for layer in range(config.num_layers):
        n_in = config.rnn_input_size if layer == 0 else h * dirs
        for d in range(dirs):
            key = f"l{layer}.{_DIRS[d]}"
            want |= {f"{key}.wx": (n_in, gh), f"{key}.wh": (h, gh), f"{key}.bx": (gh,), f"{key}.bh": (gh,)}
    want |= {"head.w": (h * dirs, config.output_size), "head.b": (config.output_size,)}
    for key, shape in want.items():
        if key not in plain:
            raise BundleError(f"NumPy weights lack {key!r} (a {config.cell} with {config.num_layers} layer(s))")
        if tuple(plain[key].shape) != shape:
            raise BundleError(
                f"NumPy weights {key!r} have shape {plain[key].shape}, the manifest's model needs {shape}"
            )
    extra = sorted(set(plain) - set(want))
    if extra:
        raise BundleError(f"NumPy weights hold arrays the manifest's model does not have: {extra}")


def load_weights(path: Any, config: ModelConfig) -> dict[str, np.ndarray]:
    """Read a weight file (never unpickling) -> plain float32 matrices checked against `config`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read NumPy weights {path}: {exc}") from exc
    plain = unpack_weights(arrays)
    check_shapes(plain, config)
    return plain
