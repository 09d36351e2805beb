"""exporter: a trained checkpoint -> a verified bundle (ONNX, TFLite, NumPy weights, manifest, golden vectors).

`export_bundle` is imported lazily so `import exporter` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_bundle"]


def __getattr__(name: str) -> Any:
    if name == "export_bundle":
        from exporter.export import export_bundle

        return export_bundle
    raise AttributeError(name)
