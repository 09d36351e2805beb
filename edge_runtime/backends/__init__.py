"""The backend registry, lazy: a backend's module (and its library) is imported only when it is asked for.

Keys are artifact formats (`numpy`, `onnx`, `tflite`); the engine names users type (`onnxruntime`,
`litert`) are accepted as aliases.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgernn.errors import ConfigError

if TYPE_CHECKING:
    from edge_runtime.backends.base import Backend

# artifact format -> (module, class)
_REGISTRY: dict[str, tuple[str, str]] = {
    "numpy": ("edge_runtime.backends.numpy_backend", "NumpyBackend"),
    "onnx": ("edge_runtime.backends.onnxrt", "OnnxBackend"),
    "tflite": ("edge_runtime.backends.tflite", "TfliteBackend"),
}
ALIASES: dict[str, str] = {"onnxruntime": "onnx", "ort": "onnx", "litert": "tflite", "tflite_runtime": "tflite"}
FORMATS: tuple[str, ...] = tuple(_REGISTRY)


def canonical_format(name: str) -> str:
    """`onnxruntime` -> `onnx`; refuses names no backend has, listing the allowed ones."""
    fmt = ALIASES.get(name, name)
    if fmt not in _REGISTRY:
        allowed = ", ".join([*_REGISTRY, *ALIASES])
        raise ConfigError(f"unknown backend {name!r}; allowed: {allowed}")
    return fmt


def backend_class(fmt: str) -> type[Backend]:
    """The Backend class for an artifact format (imports its module, not necessarily its library)."""
    module_name, class_name = _REGISTRY[canonical_format(fmt)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"the {fmt} backend cannot be loaded on this machine: {exc}") from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls


def available_backends() -> list[str]:
    """Formats whose backend can run here (its library is installed), in registry order."""
    found = []
    for fmt in _REGISTRY:
        try:
            if backend_class(fmt).available():
                found.append(fmt)
        except (ConfigError, AttributeError):
            continue
    return found
