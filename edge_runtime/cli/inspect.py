"""`edgernn inspect BUNDLE [--verify] [--json]`: what a bundle holds and how good each artifact is.

Runs on the device: NumPy and the standard library only (onnxruntime / LiteRT are imported by
`--verify` only for the artifacts whose backend is installed), never torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge_runtime.bundle.manifest import Manifest

EPILOG = """\
examples:
  edgernn inspect bundles/imu              # model, input, output, artifacts and their quality
  edgernn inspect bundles/imu --verify     # check every artifact's sha256 and re-run its golden vectors here
  edgernn inspect bundles/imu --json       # the manifest (and --verify results) as JSON

--verify exits non-zero, naming the artifact, when a file's bytes were altered or this machine's
runtime does not reproduce the outputs the exporting machine computed, or when an artifact was measured
out of tolerance at export (`run --backend auto` never picks such an artifact). Artifacts whose backend is not
installed here are listed as skipped.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show a bundle's contents and quality; --verify its golden vectors",
        description="Show what a bundle holds (model, input, output, state, artifacts) and the quality of every "
        "artifact, measured one reading at a time on the held-out streams when it was exported.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", help="bundle directory (holds manifest.json)")
    p.add_argument("--verify", action="store_true", help="check sha256s and re-run the golden vectors on this machine")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if (value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4)) else f"{value:.4f}"
    return str(value)


def _size(n: Any) -> str:
    if not n:
        return "-"
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def quality_table(manifest: Manifest) -> str:
    """Per artifact: size, the task's figures, max abs deviation from PyTorch, its tolerance, status.

    Forecast / anomaly bundles also show the best baseline on the same readings (persistence, seasonal naive,
    drift) and the model's skill against it; an artifact that does not beat it says so in its status."""
    from edge_runtime.stream.heads import HEADS

    head = HEADS.get(manifest.model.task)  # the task's quality columns, and whether baselines apply
    cols = list(head.quality_columns) if head is not None else []
    forecast = head is not None and head.baselines
    extra = ["best baseline", "skill"] if forecast else []
    header = ["artifact", "file", "size", *[h for _, h in cols], *extra, "max|dev|", "tolerance", "status"]
    rows = [header]
    ref = manifest.quality.get("pytorch", {})
    ref_status = "reference" + (_loses(ref) and f", {_loses(ref)}")
    rows.append(
        ["pytorch", "-", "-", *[_fmt(ref.get(k)) for k, _ in cols], *_baseline(ref, forecast), "-", "-", ref_status]
    )
    notes = []
    for a in manifest.artifacts:
        q = manifest.quality.get(a.id, {})
        status = a.status.upper() if a.status != "ok" else "ok"
        if _loses(q):
            status += f", {_loses(q)}"
            notes.append(f"  {a.id}: {q['warning']}")
        rows.append(
            [
                a.id,
                a.file or "-",
                _size(a.bytes),
                *[_fmt(q.get(k)) for k, _ in cols],
                *_baseline(q, forecast),
                _fmt(q.get("max_abs_dev")),
                _fmt(a.tolerance) if a.usable else "-",
                status,
            ]
        )
    notes = [f"  {a.id}: {a.reason}" for a in manifest.artifacts if a.status != "ok"] + notes
    text = _table(rows)
    if notes:
        text += "\n\nnot ok:\n" + "\n".join(notes)
    return text


def _baseline(q: dict[str, Any], forecast: bool) -> list[str]:
    """[best baseline and its MAE, the model's skill against it] (1 - MAE / baseline MAE; > 0 beats it)."""
    if not forecast:
        return []
    best = q.get("best_baseline")
    if not best:
        return ["-", "-"]
    skill = (q.get("skill") or {}).get(best)
    return [f"{best} {_fmt(q['baselines'][best])}", "-" if skill is None else f"{skill:+.1%}"]


def _loses(q: dict[str, Any]) -> str:
    return f"LOSES to {q['best_baseline']}" if q.get("beats_baselines") is False else ""


def summary(manifest: Manifest, path: str) -> str:
    m, cfg = manifest, manifest.model
    lines = [f"bundle   {path}  (format {m.format.get('version')}, written by edgernn {m.format.get('edgernn', '?')})"]
    shape = f"{cfg.num_layers} layer(s) x {cfg.hidden_size} hidden" + (", bidirectional" if cfg.bidirectional else "")
    inputs = f"tokens (vocabulary {cfg.vocab_size})" if cfg.tokens else f"{cfg.input_size} inputs"
    lines.append(f"model    {cfg.cell}, {shape}, {inputs} -> {cfg.output_size} outputs; task {cfg.task}")
    if m.window is not None:
        lines.append(f"mode     window: the last {m.window.length} readings re-run every {m.window.hop} reading(s)")
    else:
        states = ", ".join(f"{s.name} {s.shape}" for s in m.state)
        lines.append(f"mode     stream, one reading at a time; state {states}")
    scaler = m.input.scaler.kind if m.input.scaler else "none"
    rate = f", {m.input.sample_rate:g} readings/s" if m.input.sample_rate else ""
    lines.append(f"input    {', '.join(m.input.features)} ({m.input.dtype}, scaling {scaler}{rate})")
    out = m.output
    from edge_runtime.stream.heads import HEADS

    what = HEADS[out.task].describe(m) if out.task in HEADS else f"targets {', '.join(out.targets)}"
    if out.anomaly:
        what += f"; anomaly threshold {_fmt(out.anomaly.get('threshold'))}"
        if rule := out.anomaly.get("alarm"):  # what is_anomaly follows on the device instead
            what += (
                f"; alarm: score smoothed over {rule.get('readings')} readings >= {_fmt(rule.get('threshold'))}, "
                f"cleared below {_fmt(rule.get('clear'))} "
                f"(for {float(rule.get('false_alarms_per_day', 0)):g} false alarms per device-day)"
            )
    if out.target_mode == "delta":
        what += "; learnt as the change from the latest reading (delta), the reading added back here"
    lines.append(f"output   {out.task}: {what}")
    w = m.warmup
    lines.append(
        f"warm-up  {w.get('readings', 0)} readings after a reset"
        + (f" (outputs within {w['tolerance']} of full history, {w.get('on', '')})" if "tolerance" in w else "")
    )
    if m.golden:
        lines.append(f"golden   {m.golden.get('readings')} readings in {m.golden.get('file')}")
    if m.replay:
        r = m.replay
        lines.append(
            f"replay   {r.get('readings')} held-out readings in {r.get('file')} ({r.get('streams')} streams), "
            "for edgernn simulate --signal replay:bundle"
        )
    prov = m.provenance
    if prov:
        libs = prov.get("export", {}).get("libraries", {})
        lines.append(
            f"trained  data sha256 {str(prov.get('data_sha256', '?'))[:16]}, seed {prov.get('seed', '?')}"
            + (f"; exported with torch {libs['torch']}" if "torch" in libs else "")
        )
    return "\n".join(lines)


def verify_table(results: list[Any]) -> str:
    """The golden-vector checks of `verify_golden`, one row each: PASS, FAIL or SKIP (backend not installed)."""
    rows = [["check", "result", "detail"]]
    for r in results:
        rows.append([r.artifact, "SKIP" if r.skipped else ("PASS" if r.ok else "FAIL"), r.message])
    return _table(rows)


def run(ns: argparse.Namespace) -> int:
    from edge_runtime.bundle.loader import Bundle
    from edgernn.errors import VerifyError

    bundle = Bundle.open(ns.bundle, verify=False)
    m = bundle.manifest
    results = None
    if ns.verify:
        from edge_runtime.bundle.golden import verify_golden

        results = verify_golden(bundle)
    if ns.json:
        doc: dict[str, Any] = {"path": str(bundle.path), "manifest": m.to_dict()}
        if results is not None:
            doc["verify"] = [r.to_dict() for r in results]
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(summary(m, ns.bundle))
        print("\nquality on the held-out streams, each stepped one reading at a time with its state carried:")
        print(quality_table(m))
        for a in m.artifacts:
            if a.quantized or a.kept_float:
                print(
                    f"\n{a.id}: int8 = {'; '.join(a.quantized)}\n{' ' * len(a.id)}  float = {'; '.join(a.kept_float)}"
                )
        if results is not None:
            print(f"\ngolden vectors ({m.golden.get('readings')} readings) on this machine:")
            print(verify_table(results))
    if results is not None:
        bad = [r for r in results if not r.ok]
        if bad:
            names = ", ".join(r.artifact for r in bad)
            sys.stdout.flush()
            raise VerifyError(f"golden vectors fail for {names}: {bad[0].artifact}: {bad[0].message}")
    return 0
