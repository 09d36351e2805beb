"""The TFLite backend: LiteRT (`ai_edge_litert`) or, on older Pis, `tflite_runtime`.

TFLite graphs are converted at fixed batch sizes (`artifact.batch`, e.g. [1] for a device, [64] for a
gateway). A batch that is not the compiled size is stepped in chunks of it, the last chunk padded with
zero rows whose outputs are dropped, so any number of streams can be stepped with any artifact.
Token graphs take int32 tokens (litert-torch narrows int64); the backend casts.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend, State
from edge_runtime.bundle.checks import check_graph
from edge_runtime.bundle.manifest import Artifact, Manifest
from edgernn.errors import BundleError

_MANY_THREADS_FROM = 64  # compiled batches from this size get a few interpreter threads
# what the interpreter's C++ logger prints on every load, to the process's stderr: noise on every command
_NOISE = ("Created TensorFlow Lite XNNPACK delegate",)


def interpreter_module() -> Any:
    """`ai_edge_litert.interpreter`, else `tflite_runtime.interpreter` (tflite-runtime 2.14 needs numpy<2)."""
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise BundleError("no TFLite interpreter on this machine: pip install ai-edge-litert (or tflite-runtime)")


class TfliteBackend(Backend):
    name = "tflite"

    @classmethod
    def available(cls) -> bool:
        return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))

    def __init__(self, manifest: Manifest, artifact: Artifact, path: Path) -> None:
        super().__init__(manifest, artifact, path)
        sizes = artifact.batch or [1]
        if len(sizes) != 1:
            raise BundleError(f"artifact {artifact.id!r}: one compiled batch size per TFLite file, got {sizes}")
        self.batch_sizes = (int(sizes[0]),)
        self._n = self.batch_sizes[0]
        cfg = manifest.model
        self._window_mode = manifest.mode == "window"
        self._state_names = () if self._window_mode else cfg.state_names
        threads = 1 if self._n < _MANY_THREADS_FROM else max(1, min(4, os.cpu_count() or 1))
        try:
            with _native_stderr_without_noise():
                self._it = interpreter_module().Interpreter(model_path=str(path), num_threads=threads)
                self._it.allocate_tensors()
            signatures = self._it._get_full_signature_list()
        except Exception as exc:  # the interpreter raises RuntimeError/ValueError with C++ messages
            raise BundleError(
                f"artifact {artifact.id!r}: the TFLite interpreter cannot load {path.name}: {exc}"
            ) from exc
        if len(signatures) != 1:
            raise BundleError(
                f"artifact {artifact.id!r}: expected one signature in {path.name}, got {list(signatures)}"
            )
        sig = next(iter(signatures.values()))
        want_in = {"x", *(f"{n}_in" for n in self._state_names)}
        want_out = {"y", *(f"{n}_out" for n in self._state_names)}
        if set(sig["inputs"]) != want_in or set(sig["outputs"]) != want_out:
            raise BundleError(
                f"artifact {artifact.id!r}: {path.name} has inputs {sorted(sig['inputs'])} and outputs "
                f"{sorted(sig['outputs'])}; the manifest's model needs {sorted(want_in)} -> {sorted(want_out)}"
            )
        self._x = int(sig["inputs"]["x"])
        self._s_in = [int(sig["inputs"][f"{n}_in"]) for n in self._state_names]
        self._y = int(sig["outputs"]["y"])
        self._s_out = [int(sig["outputs"][f"{n}_out"]) for n in self._state_names]
        details = {d["index"]: d for d in [*self._it.get_input_details(), *self._it.get_output_details()]}
        ports = {**sig["inputs"], **sig["outputs"]}
        shapes = {k: [int(d) for d in details[i]["shape"]] for k, i in ports.items()}
        check_graph(manifest, artifact.id, path.name, shapes)  # before anything is sized by the manifest
        self._x_dtype = details[self._x]["dtype"]
        self._x_shape = tuple(int(d) for d in details[self._x]["shape"])
        if self._x_shape[0] != self._n:
            raise BundleError(f"artifact {artifact.id!r}: graph batch {self._x_shape[0]}, manifest says {self._n}")

    def _run(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Exactly one compiled batch: x (N, ...) -> y (N, O), state."""
        it = self._it
        it.set_tensor(self._x, np.ascontiguousarray(x, self._x_dtype))
        for idx, s in zip(self._s_in, state, strict=True):
            it.set_tensor(idx, np.ascontiguousarray(s, np.float32))
        it.invoke()
        return it.get_tensor(self._y), tuple(it.get_tensor(i) for i in self._s_out)

    def _padded(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        b = x.shape[0]
        xp = np.zeros((self._n, *x.shape[1:]), x.dtype)
        xp[:b] = x
        sp = []
        for s in state:
            p = np.zeros((s.shape[0], self._n, s.shape[2]), np.float32)
            p[:, :b] = s
            sp.append(p)
        y, new = self._run(xp, tuple(sp))
        return y[:b], tuple(s[:, :b] for s in new)

    def _chunked(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Any batch in chunks of the compiled one, the last padded (window mode: state is ())."""
        b, n = x.shape[0], self._n
        ys, parts = [], []
        for a in range(0, b, n):
            chunk = (x[a : a + n], tuple(s[:, a : a + n] for s in state))
            y, new = self._run(*chunk) if a + n <= b else self._padded(*chunk)
            ys.append(y)
            parts.append(new)
        return np.concatenate(ys), tuple(np.concatenate(p, axis=1) for p in zip(*parts, strict=True))

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if self._window_mode:
            raise BundleError(f"artifact {self.artifact.id!r} is a window-mode graph: call window(), not step()")
        if x.shape[0] == self._n:
            return self._run(x, state)
        return self._chunked(x, state)

    def window(self, x: np.ndarray) -> np.ndarray:
        if not self._window_mode:
            raise BundleError(f"artifact {self.artifact.id!r} is a streaming step graph: call step(), not window()")
        if x.shape[1:] != self._x_shape[1:]:
            raise BundleError(
                f"artifact {self.artifact.id!r} takes windows of shape {self._x_shape[1:]}, got {x.shape[1:]}"
            )
        return self._chunked(x, ())[0]

    def close(self) -> None:
        self._it = None


@contextlib.contextmanager
def _native_stderr_without_noise() -> Iterator[None]:
    """File descriptor 2 into a temp file while the interpreter loads, then everything it got back to stderr
    except the known INFO lines (C++ writes past sys.stderr, so only the descriptor can be caught)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in _NOISE))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
