"""The onnxruntime backend: the bundle's ONNX step graph (fp32, or int8 from dynamic quantization).

Batch 1 (one device stream) is bound by per-call overhead, not arithmetic, so it gets its own path:
a session with one intra-op thread and spinning off (a spinning pool burns a Pi's cores between
readings), and pre-built IOBindings between buffer sets that the state ping-pongs through: the state
a step returns is the next step's bound input, with nothing allocated or rebound per reading.
Purity is kept: a buffer set is written only when nobody outside the backend still holds its arrays
(checked by reference count), so a caller that keeps an old state (rollout, several streams, a
snapshot) never sees it change; when no set is free the step falls back to a plain `run`.
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
from edge_runtime.manifest import Artifact, Manifest
from edgernn.errors import BundleError

_POOL = 4  # buffer sets for the batch-1 fast path (several streams stepped one at a time)
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
        self._many: Any = None  # multi-threaded session, made on the first large batch
        self._lock = threading.Lock()
        layers, hidden = self._state_shape
        self._xbuf = np.zeros((1,) if cfg.tokens else (1, cfg.input_size), self._x_dtype)
        self._ybuf = np.zeros((1, cfg.output_size), np.float32)
        self._state1 = (layers, 1, hidden)
        self._sets: list[list[np.ndarray]] = []
        self._bindings: dict[tuple[int, int], Any] = {}
        self._base_refs = -1

    # ---- batch 1: ping-pong between pre-bound buffer sets
    def _new_set(self) -> int:
        self._sets.append([np.zeros(self._state1, np.float32) for _ in self._state_names])
        if self._base_refs < 0:
            self._base_refs = max(sys.getrefcount(a) for a in self._sets[-1])
        return len(self._sets) - 1

    def _free(self, i: int) -> bool:
        """Whether set `i` is held by nobody but this backend (no caller keeps its arrays or views)."""
        return all(sys.getrefcount(a) <= self._base_refs for a in self._sets[i])

    def _binding(self, i: int, o: int) -> Any:
        key = (i, o)
        binding = self._bindings.get(key)
        if binding is None:
            binding = self._sess.io_binding()
            binding.bind_cpu_input("x", self._xbuf)
            for name, arr in zip(self._in[1:], self._sets[i], strict=True):
                binding.bind_cpu_input(name, arr)
            outs = [self._ybuf, *self._sets[o]]
            for name, arr in zip(self._out, outs, strict=True):
                binding.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
            self._bindings[key] = binding
        return binding

    def _pick(self, state: State) -> tuple[int, int] | None:
        """(input set, output set) for this step, copying a foreign state into a free set; None: no set free."""
        i = -1
        for k, s in enumerate(self._sets):
            if s[0] is state[0]:
                i = k
                break
        o = next((k for k in range(len(self._sets)) if k != i and self._free(k)), -1)
        if o < 0:
            if len(self._sets) >= _POOL:
                return None
            o = self._new_set()
        if i < 0 or any(a is not b for a, b in zip(self._sets[i], state, strict=True)):
            i = next((k for k in range(len(self._sets)) if k != o and self._free(k)), -1)
            if i < 0:
                if len(self._sets) >= _POOL:
                    return None
                i = self._new_set()
            for dst, src in zip(self._sets[i], state, strict=True):
                dst[...] = src
        return i, o

    def _step1(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State] | None:
        if not self._lock.acquire(blocking=False):
            return None  # another thread is stepping: take the plain path rather than wait
        try:
            pair = self._pick(state)
            if pair is None:
                return None
            self._xbuf[...] = x
            self._sess.run_with_iobinding(self._binding(*pair))
            return self._ybuf.copy(), tuple(self._sets[pair[1]])
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
        x = np.ascontiguousarray(x, self._x_dtype)
        if x.shape[0] == 1 and state[0].shape[1] == 1:
            fast = self._step1(x, state)
            if fast is not None:
                return fast
        feeds = {"x": x}
        for name, s in zip(self._in[1:], state, strict=True):
            feeds[name] = np.ascontiguousarray(s, np.float32)
        y, *new = self._session_for(x.shape[0]).run(self._out, feeds)
        return y, tuple(new)

    def window(self, x: np.ndarray) -> np.ndarray:
        if not self._window_mode:
            raise BundleError(f"artifact {self.artifact.id!r} is a streaming step graph: call step(), not window()")
        x = np.ascontiguousarray(x, self._x_dtype)
        (y,) = self._session_for(x.shape[0]).run(["y"], {"x": x})
        return y

    def close(self) -> None:
        self._bindings.clear()
        self._sess = None
        self._many = None
