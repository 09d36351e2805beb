"""What the examples share: where they write, and the export they all do."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_runtime.manifest import Manifest


def parse_out(default: str) -> tuple[Path, bool]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=default, help=f"where runs and bundles go (default: {default})")
    parser.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    ns = parser.parse_args()
    return Path(ns.out), ns.quick


def export(run_dir: Path, bundle_dir: Path, formats: tuple[str, ...] = ("numpy", "onnx")) -> Manifest:
    """Export fp32 and int8 in the formats the example runs on (TFLite conversion is the slow one)."""
    from exporter import export_bundle

    if bundle_dir.exists():
        import shutil

        shutil.rmtree(bundle_dir)
    return export_bundle(run_dir, bundle_dir, formats=formats, progress=False)
