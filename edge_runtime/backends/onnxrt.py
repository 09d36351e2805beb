"""The onnxruntime backend: the bundle's ONNX step graph (fp32, or int8 from dynamic quantization).

Batch 1 (one device stream) is bound by per-call overhead, not arithmetic, so it gets its own path:
a session with one intra-op thread and spinning off (a spinning pool burns a Pi's cores between
readings), and two IOBindings built once over two buffer sets that the state ping-pongs through: the
state a step returns is the next step's bound input, nothing is allocated or rebound per reading
(measured on x86: 16 us instead of 21 us per raw step of a small GRU, 33 instead of 40 for a 2x64 LSTM).
Purity is kept: a buffer set is written only when nobody outside the backend still holds it or any of
its arrays (reference counts), so a caller that keeps an old state (a rollout, a snapshot, another
stream) never sees it change; a state from elsewhere is copied in, and when no set is free the step
takes the plain `session.run` path.
Larger batches run on a second session with a few threads (dynamic batch axis, one call for N streams).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.backends.base import Backend, State
from edge_runtime.bundle.checks import check_graph
from edge_runtime.bundle.manifest import Artifact, Manifest
from edgernn.errors import BundleError

_MANY_THREADS_FROM = 64  # batches from this size use the multi-threaded session


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxBackend(Backend):
    name = "onnxruntime"
    batch_sizes = None

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def __init__(self, manifest: Manifest, artifact: Artifact, path: Path) -> None:
        super().__init__(manifest, artifact, path)
        cfg = manifest.model
        self._window_mode = manifest.mode == "window"
        self._x_dtype = np.int64 if cfg.tokens else np.float32
        self._state_names = () if self._window_mode else cfg.state_names
        self._in = ["x", *(f"{n}_in" for n in self._state_names)]
        self._out = ["y", *(f"{n}_out" for n in self._state_names)]
        try:
            self._sess = _session(path, threads=1)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"artifact {artifact.id!r}: onnxruntime cannot load {path.name}: {exc}") from exc
        got_in = [i.name for i in self._sess.get_inputs()]
        got_out = [o.name for o in self._sess.get_outputs()]
        if got_in != self._in or got_out != self._out:
            raise BundleError(
                f"artifact {artifact.id!r}: {path.name} has inputs {got_in} and outputs {got_out}; "
                f"the manifest's model needs {self._in} -> {self._out}"
            )
        ports = [*self._sess.get_inputs(), *self._sess.get_outputs()]
        check_graph(manifest, artifact.id, path.name, {p.name: p.shape for p in ports})  # before allocating
        # int8 graphs quantize activations dynamically with one scale per tensor: stepped as one batch, a
        # stream's output would depend on its neighbours. Row by row, each stream gets exactly the output
        # the quality report measured for it (at N calls' cost; `auto` weighs that when it picks).
        self._rowwise = artifact.precision == "int8"
        self._many: Any = None  # multi-threaded session, made on the first large batch
        self._lock = threading.Lock()
        layers, hidden = self._state_shape
        self._xbuf = np.zeros((1,) if cfg.tokens else (1, cfg.input_size), self._x_dtype)
        self._ybuf = np.zeros((1, cfg.output_size), np.float32)
        # two buffer sets the state ping-pongs through: binding k reads set k and writes set 1 - k
        self._sets = tuple(
            tuple(np.zeros((layers, 1, hidden), np.float32) for _ in self._state_names) for _ in range(2)
        )
        self._bindings = () if self._window_mode else (self._bind(0), self._bind(1))
        self._base_refs = self._refs(0)
        self.fast_steps = 0  # batch-1 steps that took the pre-bound path (the rest ran `session.run`)

    # ---- batch 1: ping-pong between two pre-bound buffer sets
    def _bind(self, i: int) -> Any:
        """IOBinding reading set i, writing set 1 - i. Raw pointers for the inputs too: `bind_cpu_input`
        would hold a reference to the array and skew the reference counts `_free` relies on."""
        binding = self._sess.io_binding()
        for name, arr in zip(self._in, (self._xbuf, *self._sets[i]), strict=True):
            binding.bind_input(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        for name, arr in zip(self._out, (self._ybuf, *self._sets[1 - i]), strict=True):
            binding.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        return binding

    def _refs(self, k: int) -> tuple[int, int]:
        """Reference counts of set k's tuple and of its most referenced array (views count)."""
        t = self._sets[k]
        return sys.getrefcount(t), max((sys.getrefcount(a) for a in t), default=0)

    def _free(self, k: int) -> bool:
        """Whether nobody but this backend holds set k: not its tuple, an array of it, nor a view."""
        refs = self._refs(k)
        return refs[0] <= self._base_refs[0] and refs[1] <= self._base_refs[1]

    def _step1(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State] | None:
        if not self._lock.acquire(blocking=False):
            return None  # another thread is stepping: take the plain path rather than wait
        try:
            if state is self._sets[0] or state is self._sets[1]:  # the device loop hands back what it got
                i = 0 if state is self._sets[0] else 1
                if not self._free(1 - i):
                    return None
            else:  # a state from elsewhere: copy it into set 0, both sets must be free
                i = 0
                if not (self._free(0) and self._free(1)):
                    return None
                for dst, src in zip(self._sets[0], state, strict=True):
                    dst[...] = src
            self._xbuf[...] = x
            self._sess.run_with_iobinding(self._bindings[i])
            self.fast_steps += 1
            return self._ybuf.copy(), self._sets[1 - i]
        finally:
            self._lock.release()

    # ---- the Backend interface
    def _session_for(self, batch: int) -> Any:
        if batch < _MANY_THREADS_FROM:
            return self._sess
        if self._many is None:
            self._many = _session(self.path, threads=max(1, min(4, os.cpu_count() or 1)))
        return self._many

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if self._window_mode:
            raise BundleError(f"artifact {self.artifact.id!r} is a window-mode graph: call window(), not step()")
        if x.shape[0] == 1 and state[0].shape[1] == 1:
            fast = self._step1(x, state)
            if fast is not None:
                return fast
        if self._rowwise and x.shape[0] > 1:
            rows = [self._run(x[b : b + 1], tuple(s[:, b : b + 1] for s in state)) for b in range(x.shape[0])]
            return (
                np.concatenate([r[0] for r in rows]),
                tuple(np.concatenate([r[1][k] for r in rows], axis=1) for k in range(len(state))),
            )
        return self._run(x, state)

    def _run(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        feeds = {"x": np.ascontiguousarray(x, self._x_dtype)}
        for name, s in zip(self._in[1:], state, strict=True):
            feeds[name] = np.ascontiguousarray(s, np.float32)
        y, *new = self._session_for(x.shape[0]).run(self._out, feeds)
        return y, tuple(new)

    def window(self, x: np.ndarray) -> np.ndarray:
        if not self._window_mode:
            raise BundleError(f"artifact {self.artifact.id!r} is a streaming step graph: call step(), not window()")
        x = np.ascontiguousarray(x, self._x_dtype)
        if self._rowwise and x.shape[0] > 1:
            return np.concatenate([self._sess.run(["y"], {"x": x[b : b + 1]})[0] for b in range(x.shape[0])])
        (y,) = self._session_for(x.shape[0]).run(["y"], {"x": x})
        return y

    def close(self) -> None:
        self._bindings = ()
        self._sess = None
        self._many = None
