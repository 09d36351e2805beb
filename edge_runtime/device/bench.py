"""Measurements behind `edgernn bench`: per artifact, the raw backend call and the whole `step_one` path at
batch 1, and raw vs `step_many` throughput at larger N; import time and memory per backend in fresh subprocesses.
PyTorch eager, the reference beside them, is measured by `exporter.reference` (laptop side: it needs the trainer).

Timing on a shared machine is noisy, so every variant is measured in short bursts taken in turns
(round-robin), and the fastest burst is reported (as `timeit` advises: slower ones measure the
interference of other processes, not the code): ratios between variants of one run are what to trust.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.select import example_input
from edge_runtime.stream.predictor import Predictor


@dataclass
class Variant:
    """One thing to time: `call()` does `items` readings' worth of work."""

    key: str
    call: Callable[[], Any]
    items: int
    bursts: list[float] = field(default_factory=list)  # seconds per call, one per burst

    @property
    def us(self) -> float:
        return float(min(self.bursts) * 1e6) if self.bursts else float("nan")

    @property
    def per_s(self) -> float:
        return self.items / (self.us * 1e-6) if self.bursts else float("nan")


def run_rounds(variants: Sequence[Variant], rounds: int, burst_s: float, progress: Any = None) -> None:
    """Each round times a burst (about `burst_s`) of every variant in turn."""
    for v in variants:  # warm up: caches, lazily built sessions and buffers
        for _ in range(3):
            v.call()
    reps = {}
    for v in variants:
        t0 = time.perf_counter()
        v.call()
        reps[v.key] = max(1, int(burst_s / max(time.perf_counter() - t0, 1e-7)))
    for _ in range(rounds):
        for v in variants:
            n = reps[v.key]
            t0 = time.perf_counter()
            for _ in range(n):
                v.call()
            v.bursts.append((time.perf_counter() - t0) / n)
        if progress is not None:
            progress.update(1)


def reading_rows(bundle: Bundle, n: int, seed: int = 0) -> np.ndarray:
    """Plausible raw readings: the scaler's mean +- one std (tokens: random ids)."""
    m = bundle.manifest
    rng = np.random.default_rng(seed)
    if m.model.tokens:
        return rng.integers(0, m.model.vocab_size, size=n)
    sc = m.input.scaler
    off = np.asarray(sc.offset if sc else [0.0] * m.model.input_size)
    scale = np.asarray(sc.scale if sc else [1.0] * m.model.input_size)
    return rng.normal(off, scale, size=(n, len(off)))


def artifact_variants(bundle: Bundle, artifact_id: str, sizes: Sequence[int]) -> tuple[list[Variant], list[Any]]:
    """raw@1, step_one, and raw@N / step_many@N for one artifact. Returns the variants and what to close."""
    backend = bundle.open_backend(artifact_id)
    pred = Predictor.load(bundle.path, artifact=artifact_id, verify=False)
    variants = []
    rows = reading_rows(bundle, 4096)
    window = bundle.manifest.mode == "window"
    x1 = example_input(bundle.manifest, 1)
    if not bundle.manifest.model.tokens:
        x1 = x1 + np.float32(0.1)
    st = [backend.init_state(1)]

    def raw1() -> None:
        if window:
            backend.window(x1)
        else:
            _, st[0] = backend.step(x1, st[0])

    variants.append(Variant(f"{artifact_id}|raw|1", raw1, 1))
    one_rows = [r.tolist() if hasattr(r, "tolist") else r for r in rows[:256]]
    clock = [time.time()]
    k = [0]

    def one() -> None:
        clock[0] += 1e-3
        k[0] = (k[0] + 1) % len(one_rows)
        pred.step_one(one_rows[k[0]], t=clock[0])

    variants.append(Variant(f"{artifact_id}|step_one|1", one, 1))
    for n in sizes:
        many = Predictor.load(bundle.path, artifact=artifact_id, verify=False)
        xn = np.ascontiguousarray(np.resize(rows, (n, *rows.shape[1:])))
        xs = (xn - np.asarray(many.guard.offset)) / many.guard.scale if not bundle.manifest.model.tokens else xn
        xs = xs.astype(np.float32) if not bundle.manifest.model.tokens else xs.astype(np.int64)
        ids = [f"s{i}" for i in range(n)]
        stn = [backend.init_state(n)]
        tn = [time.time()]

        xw = example_input(bundle.manifest, n)  # window mode: whole windows

        def raw_n(xs: np.ndarray = xs, stn: list[Any] = stn, xw: np.ndarray = xw) -> None:
            if window:
                backend.window(xw)
            else:
                _, stn[0] = backend.step(xs, stn[0])

        def many_n(xn: np.ndarray = xn, ids: list[str] = ids, tn: list[float] = tn, many: Predictor = many) -> None:
            tn[0] += 1e-3
            many.step_many(xn, ids, t=tn[0])

        variants.append(Variant(f"{artifact_id}|raw_many|{n}", raw_n, n))
        variants.append(Variant(f"{artifact_id}|step_many|{n}", many_n, n))
    return variants, [backend, pred]


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.select import example_input
b = Bundle.open(sys.argv[1], verify=False)
be = b.open_backend(sys.argv[2])
x = example_input(b.manifest, 1)
be.step(x, be.init_state(1)) if b.manifest.mode == "stream" else be.window(x)
t1 = time.perf_counter()
rss = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM"))}
print(json.dumps({"load_s": t1 - t0, "rss_kb": rss.get("VmHWM", rss.get("VmRSS", 0))}))
"""


def subprocess_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])  # the repository root, above edge_runtime/device
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def backend_footprint(bundle: Bundle, artifact_id: str) -> dict[str, float]:
    """A fresh interpreter: seconds to import edge_runtime, open this artifact and step once; peak RSS in MB."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(bundle.path), artifact_id],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}  # type: ignore[dict-item]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"load_s": got["load_s"], "rss_mb": got["rss_kb"] / 1024}


def run_footprint(bundle: Bundle, artifact_id: str, tries: int = 3) -> dict[str, float]:
    """`edgernn run --source stdin` in fresh processes: fastest start to first prediction line (seconds),
    peak RSS; and, for scale, how long `python -c "import numpy"` takes on this machine right now."""
    m = bundle.manifest
    if m.model.tokens:
        line = json.dumps({m.input.features[0]: 1})
    else:
        line = json.dumps(dict(zip(m.input.features, reading_rows(bundle, 1)[0].tolist(), strict=True)))
    firsts, rss, numpy_s = [], [], []
    cmd = [sys.executable, "-m", "edgernn", "run", str(bundle.path), "--source", "stdin", "--artifact", artifact_id]
    for _ in range(tries):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env()
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        proc.stdout.readline()
        firsts.append(time.perf_counter() - t0)
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss.append(next(int(x.split()[1]) for x in f if x.startswith("VmHWM")) / 1024)
        except OSError:
            pass
        proc.communicate(timeout=30)  # closes stdin: the run ends
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        numpy_s.append(time.perf_counter() - t0)
    return {
        "first_prediction_s": min(firsts),
        "rss_mb": float(np.median(rss)) if rss else float("nan"),
        "python_numpy_import_s": min(numpy_s),
    }
