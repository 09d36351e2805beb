"""What the examples share: their command line, and the export they all do."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_runtime.bundle.manifest import Manifest


def parse_out(doc: str | None, default: str = "runs/examples") -> tuple[Path, bool]:
    """The example's `--out` and `--quick`; its docstring is the `--help` text."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default, help=f"where runs and bundles go (default: {default})")
    parser.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    ns = parser.parse_args()
    return Path(ns.out), ns.quick


def export(run_dir: Path, bundle_dir: Path, formats: tuple[str, ...] = ("numpy", "onnx")) -> Manifest:
    """Export fp32 and int8 in the formats the example runs on (TFLite conversion is the slow one).
    An earlier bundle at `bundle_dir` is replaced by the exporter, by rename, once the new one is complete."""
    from exporter import export_bundle

    return export_bundle(run_dir, bundle_dir, formats=formats, progress=False)
