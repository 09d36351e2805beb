"""`edgernn export RUN_DIR --out BUNDLE`: quantize and export a trained run into a verified bundle."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  edgernn export runs/imu --out bundles/imu                      # ONNX, TFLite and NumPy; fp32 and int8
  edgernn export runs/imu --out bundles/imu --formats onnx,numpy  # skip the (slow) TFLite conversion
  edgernn export runs/imu --out bundles/gw --tflite-batch 64      # also a batch-64 TFLite graph for a gateway
  edgernn export runs/imu --out bundles/imu --allow-missing tflite

Every artifact is stepped one reading at a time over the run's held-out streams, through the same
runtime backend a device uses, and the table printed at the end is what the device will compute:
the task's figures, the max abs deviation from PyTorch and each artifact's tolerance. An artifact
worse than its tolerance is marked OUT_OF_TOLERANCE in the table and the manifest.
The bundle is written into a temporary directory and renamed into place when complete. A requested
format that fails stops the export (exit 2, no bundle) unless --allow-missing names it; then the
bundle is written without it and the manifest records the failure and its reason.
"""


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,64, got {text!r}") from exc


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="quantize and export a checkpoint into a verified bundle (ONNX, TFLite, NumPy)",
        description="Export a training run (checkpoint.pt + heldout.npz) into a bundle: step graphs in ONNX, "
        "TFLite and NumPy form, fp32 and int8, a manifest, quality measured the device way and golden vectors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run directory (or a checkpoint.pt inside one)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to write (replaced if a bundle)")
    p.add_argument("--formats", default="onnx,tflite,numpy", help="comma-separated (default: onnx,tflite,numpy)")
    p.add_argument("--precisions", default="fp32,int8", help="comma-separated (default: fp32,int8)")
    p.add_argument(
        "--tflite-batch",
        type=_ints,
        default=[1],
        metavar="N[,N]",
        help="fixed batch sizes of the TFLite graphs; batch 1 is always made (default: 1)",
    )
    p.add_argument(
        "--allow-missing",
        default="",
        metavar="FORMAT[,FORMAT]",
        help="formats whose failure is recorded in the manifest instead of failing the export",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from edge_runtime.cli.inspect import quality_table
    from exporter.export import export_bundle

    manifest = export_bundle(
        ns.run_dir,
        ns.out,
        formats=ns.formats,
        precisions=ns.precisions,
        tflite_batches=ns.tflite_batch,
        allow_missing=ns.allow_missing,
        progress=not ns.no_progress,
    )
    usable = [a for a in manifest.artifacts if a.usable]
    print(f"wrote {ns.out}: {len(usable)} artifact(s), golden vectors of {manifest.golden.get('readings')} readings")
    print(f"warm-up: {manifest.warmup.get('readings')} readings after a reset\n")
    print(quality_table(manifest))
    for a in manifest.artifacts:
        if a.status == "out_of_tolerance":
            print(f"WARNING: {a.id} is OUT OF TOLERANCE: {a.reason}", file=sys.stderr)
        elif a.status == "failed":
            print(f"WARNING: {a.id} was not exported (allowed missing): {a.reason}", file=sys.stderr)
    return 0
