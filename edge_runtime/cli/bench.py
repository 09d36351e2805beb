"""`edgernn bench`: per-reading latency, throughput and memory of every backend x precision of a bundle."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  edgernn bench bundles/imu                                  # every installed backend, fp32 and int8
  edgernn bench bundles/imu --backends numpy,tflite --sizes 1,64 --out bench/
  edgernn bench bundles/imu --rounds 3 --no-footprint        # quicker, no subprocess measurements

Per artifact: the raw backend call at batch 1, `step_one` through the whole path (validate, scale, step,
postprocess), and raw vs `step_many` throughput at each N; PyTorch eager on the same weights as the
reference when torch is installed; import+load time and peak RSS per backend in a fresh process; and
`edgernn run` (NumPy) start-to-first-prediction and RSS. Variants are timed in short bursts taken in
turns and the fastest burst is reported, so the ratios of one run are comparable. Prints the table;
--out DIR also writes bench.json (every figure, and the project's own speed targets) and bench.png there.
"""


def add_parser(sub: Any, reference: Callable[..., list[Any]] | None = None) -> None:
    """`reference(bundle, sizes)`: more variants measured beside the runtime's (the PyTorch eager row)."""
    p = sub.add_parser(
        "bench",
        help="measure per-reading latency, throughput and memory per backend",
        description="Measure a bundle on every installed backend and precision: batch-1 latency of the raw "
        "backend call and of step_one, step_many throughput at several N, memory and start-up.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--backends", default="numpy,onnx,tflite", help="comma list (default: numpy,onnx,tflite)")
    p.add_argument("--precisions", default="fp32,int8", help="comma list (default: fp32,int8)")
    p.add_argument("--sizes", default="1,64,4096", help="step_many batch sizes N (default: 1,64,4096)")
    p.add_argument("--rounds", type=int, default=7, help="timing rounds, each a burst per variant (default: 7)")
    p.add_argument("--burst", type=float, default=0.02, help="seconds per burst (default: 0.02)")
    p.add_argument("--out", help="also write bench.json and bench.png into this directory (default: print only)")
    p.add_argument("--no-footprint", dest="footprint", action="store_false", help="skip subprocess measurements")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=bench, reference=reference)


def bench(ns: argparse.Namespace) -> int:
    from edge_runtime.backends import available_backends, canonical_format
    from edge_runtime.bundle.loader import Bundle
    from edge_runtime.device import bench as B
    from edgernn.errors import ConfigError

    bundle = Bundle.open(ns.bundle)
    formats = [canonical_format(f.strip()) for f in ns.backends.split(",") if f.strip()]
    precisions = [p.strip() for p in ns.precisions.split(",") if p.strip()]
    try:
        sizes = [int(n) for n in ns.sizes.split(",") if n.strip()]
    except ValueError as exc:
        raise ConfigError(f"--sizes {ns.sizes!r}: comma-separated integers expected, e.g. 1,64,4096") from exc
    installed = set(available_backends())
    arts = [
        a
        for a in bundle.manifest.artifacts
        if a.usable and a.format in formats and a.format in installed and a.precision in precisions
    ]
    if not arts:
        raise ConfigError(f"no usable artifact for backends {formats} and precisions {precisions} installed here")
    variants, closers = [], []
    for a in arts:
        v, c = B.artifact_variants(bundle, a.id, sizes)
        variants += v
        closers += c
    if ns.reference is not None:
        variants += ns.reference(bundle, sizes)
    bar = _progress(ns.rounds, ns.progress)
    B.run_rounds(variants, ns.rounds, ns.burst, bar)
    if bar is not None:
        bar.close()
    for c in closers:
        c.close()
    results = {v.key: {"us": v.us, "per_s": v.per_s, "items": v.items} for v in variants}
    footprint: dict[str, Any] = {}
    run_fp: dict[str, Any] = {}
    if ns.footprint:
        for a in arts:
            footprint.setdefault(a.format, B.backend_footprint(bundle, a.id) | {"artifact": a.id})
        numpy_art = next((a for a in arts if a.format == "numpy" and a.precision == "fp32"), None)
        numpy_art = numpy_art or next((a for a in arts if a.format == "numpy"), None)
        if numpy_art is not None:
            run_fp = B.run_footprint(bundle, numpy_art.id) | {"artifact": numpy_art.id}
    targets = check_targets(results, [a.id for a in arts], sizes, run_fp)
    report = {
        "bundle": str(bundle.path),
        "model": bundle.manifest.model.to_dict(),
        "machine": _machine(),
        "rounds": ns.rounds,
        "sizes": sizes,
        "results": results,
        "footprint": footprint,
        "run": run_fp,
        "targets": targets,
    }
    print(render_table(report, [a.id for a in arts]))
    if ns.out is None:
        print("\n(--out DIR writes these figures to DIR/bench.json and a chart to DIR/bench.png)")
        return 0
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    chart = write_chart(report, [a.id for a in arts], out / "bench.png")
    print(f"wrote {out / 'bench.json'}" + (f" and {chart}" if chart else " (no chart: matplotlib not installed)"))
    return 0


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="bench rounds", file=sys.stderr)


def _machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_1min": load,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def check_targets(
    results: dict[str, Any], ids: list[str], sizes: list[int], run_fp: dict[str, Any]
) -> list[dict[str, Any]]:
    """The runtime issue's ratio targets, each with the figures it was judged on."""

    def us(key: str) -> float | None:
        r = results.get(key)
        return None if r is None else r["us"]

    raw1 = {i: us(f"{i}|raw|1") for i in ids}
    one = {i: us(f"{i}|step_one|1") for i in ids}
    targets: list[dict[str, Any]] = []
    fastest = min(raw1, key=lambda i: raw1[i] or float("inf"))
    best = min(one, key=lambda i: one[i] or float("inf"))
    fr, bo = raw1[fastest], one[best]
    if fr and bo:
        targets.append(_t(f"step_one ({best}) vs the raw fastest call ({fastest})", bo / fr, "<=", 1.5, "x"))
    torch1 = us("pytorch-eager|raw|1")
    if torch1 and bo:
        targets.append(_t(f"PyTorch eager step vs step_one ({best})", torch1 / bo, ">=", 10.0, "x faster"))
    np1 = raw1.get("numpy-fp32")
    tfl1 = raw1.get("tflite-fp32")
    if np1 and tfl1:
        targets.append(_t("NumPy fp32 raw call vs TFLite fp32 raw call, batch 1", np1 / tfl1, "<=", 2.0, "x"))
    n = max(sizes) if sizes else None
    if n is not None:
        raw_n = {i: results[f"{i}|raw_many|{n}"]["per_s"] for i in ids if f"{i}|raw_many|{n}" in results}
        many_n = {i: results[f"{i}|step_many|{n}"]["per_s"] for i in ids if f"{i}|step_many|{n}" in results}
        if raw_n and many_n:
            bi, bm = max(raw_n, key=lambda i: raw_n[i]), max(many_n, key=lambda i: many_n[i])
            name = f"step_many at N={n} ({bm}) vs the best raw batched call ({bi})"
            targets.append(_t(name, many_n[bm] / raw_n[bi], ">=", 0.9, "x"))
    if run_fp:
        targets.append(_t("edgernn run (NumPy): peak RSS", run_fp["rss_mb"], "<=", 40.0, "MB"))
        targets.append(
            _t("edgernn run (NumPy): start to first prediction", run_fp["first_prediction_s"], "<=", 0.3, "s")
        )
    return targets


def _t(name: str, value: float, op: str, limit: float, unit: str) -> dict[str, Any]:
    met = value <= limit if op == "<=" else value >= limit
    return {"target": name, "value": round(value, 4), "op": op, "limit": limit, "unit": unit, "met": bool(met)}


def render_table(report: dict[str, Any], ids: list[str]) -> str:
    res, sizes = report["results"], report["sizes"]
    m = report["model"]
    mach = report["machine"]
    head = (
        f"edgernn bench {report['bundle']}: {m['cell']} {m['num_layers']}x{m['hidden_size']}, "
        f"{m['input_size']} inputs; {report['rounds']} rounds, fastest burst; "
        f"{mach['cpus']} cpus, load {mach['load_1min']:.1f}"
    )
    cols = ["artifact", "raw@1 µs", "step_one µs", "one/raw"]
    for n in sizes:
        cols += [f"raw@{n} /s", f"many@{n} /s", "many/raw"]
    rows = [cols]
    for i in [*ids, "pytorch-eager"]:
        r1, o1 = res.get(f"{i}|raw|1"), res.get(f"{i}|step_one|1")
        if r1 is None:
            continue
        row = [i, f"{r1['us']:.1f}", f"{o1['us']:.1f}" if o1 else "-", f"{o1['us'] / r1['us']:.2f}" if o1 else "-"]
        for n in sizes:
            rn, mn = res.get(f"{i}|raw_many|{n}"), res.get(f"{i}|step_many|{n}")
            row += [f"{rn['per_s']:.0f}" if rn else "-", f"{mn['per_s']:.0f}" if mn else "-"]
            row.append(f"{mn['per_s'] / rn['per_s']:.2f}" if rn and mn else "-")
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(cols))]
    lines = [head, ""]
    lines += [
        "  ".join(cell.rjust(w) if c else cell.ljust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    if report["footprint"]:
        lines += ["", "fresh process: import edge_runtime + open + first step, peak RSS"]
        for fmt, f in report["footprint"].items():
            if "error" in f:
                lines.append(f"  {fmt:8s} failed: {f['error']}")
            else:
                lines.append(f"  {fmt:8s} {f['load_s']:.2f} s  {f['rss_mb']:.0f} MB  ({f['artifact']})")
    if report["run"]:
        r = report["run"]
        lines.append(
            f"  edgernn run ({r['artifact']}): first prediction {r['first_prediction_s']:.2f} s after start, "
            f"peak RSS {r['rss_mb']:.0f} MB (python -c 'import numpy' alone: {r['python_numpy_import_s']:.2f} s)"
        )
    # report["targets"] (the project's own speed goals) stay in bench.json: a user's table has no use for them
    return "\n".join(lines)


def write_chart(report: dict[str, Any], ids: list[str], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    res, sizes = report["results"], report["sizes"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [i for i in [*ids, "pytorch-eager"] if f"{i}|raw|1" in res]
    xs = range(len(names))
    ax1.bar([x - 0.2 for x in xs], [res[f"{i}|raw|1"]["us"] for i in names], 0.4, label="raw backend call")
    ax1.bar(
        [x + 0.2 for x in xs],
        [res.get(f"{i}|step_one|1", {"us": 0})["us"] for i in names],
        0.4,
        label="step_one (whole path)",
    )
    ax1.set_xticks(list(xs), names, rotation=30, ha="right")
    ax1.set_ylabel("µs per reading, batch 1")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.set_title("one reading")
    for i in names:
        raw = [res[f"{i}|raw_many|{n}"]["per_s"] for n in sizes if f"{i}|raw_many|{n}" in res]
        line = ax2.plot(sizes[: len(raw)], raw, marker="o", label=f"{i} raw")[0]
        many = [res[f"{i}|step_many|{n}"]["per_s"] for n in sizes if f"{i}|step_many|{n}" in res]
        if many:
            ax2.plot(
                sizes[: len(many)], many, marker="x", linestyle="--", color=line.get_color(), label=f"{i} step_many"
            )
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("streams per call (N)")
    ax2.set_ylabel("readings per second")
    ax2.set_title("N streams per call")
    ax2.legend(fontsize=7)
    fig.suptitle(f"edgernn bench: {Path(report['bundle']).name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
