"""A bundle is trusted only after its manifest, paths and every artifact's sha256 check out."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edge_runtime.backends import available_backends, backend_class
from edge_runtime.backends.numpy_backend import NumpyBackend
from edge_runtime.bundle.loader import Bundle
from edgernn.errors import BundleError, ConfigError


def test_open_verifies_and_steps(gru_bundle):
    b = Bundle.open(gru_bundle)
    assert b.manifest.model.cell == "gru"
    backend = b.open_backend("numpy-int8")
    assert isinstance(backend, NumpyBackend) and backend.precision == "int8"
    y, state = backend.step(np.zeros((3, 4), np.float32), backend.init_state(3))
    assert y.shape == (3, 3) and state[0].shape == (1, 3, 16)


def test_tampered_artifact_is_refused_naming_it(gru_bundle):
    path = gru_bundle / "weights.int8.npz"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"numpy-int8.*sha256"):
        Bundle.open(gru_bundle)
    Bundle.open(gru_bundle, verify=False)  # the caller may choose to skip hashing


def test_missing_artifact_is_refused(gru_bundle):
    (gru_bundle / "weights.npz").unlink()
    with pytest.raises(BundleError, match="missing"):
        Bundle.open(gru_bundle)


def _edit_manifest(bundle, edit):
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_paths_leaving_the_bundle_are_refused(gru_bundle, tmp_path):
    _edit_manifest(gru_bundle, lambda d: d["artifacts"][0].update(file="../weights.npz"))
    with pytest.raises(BundleError, match="leaves the bundle"):
        Bundle.open(gru_bundle)


def test_symlink_out_of_the_bundle_is_refused(gru_bundle, tmp_path):
    outside = tmp_path / "elsewhere.npz"
    os.replace(gru_bundle / "weights.npz", outside)
    (gru_bundle / "weights.npz").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(gru_bundle)


def test_unknown_format_version_is_refused(gru_bundle):
    _edit_manifest(gru_bundle, lambda d: d["format"].update(version=99))
    with pytest.raises(BundleError, match="version 99"):
        Bundle.open(gru_bundle)


def test_pickled_arrays_are_never_loaded(gru_bundle):
    path = gru_bundle / "weights.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["evil"] = np.array([{"a": 1}], dtype=object)
    np.savez(path, **arrays)
    b = Bundle.open(gru_bundle, verify=False)
    with pytest.raises(BundleError, match="cannot read NumPy weights"):
        b.open_backend("numpy-fp32")


def test_registry_is_lazy_and_names_the_allowed_backends():
    assert "numpy" in available_backends()
    assert backend_class("numpy") is NumpyBackend
    with pytest.raises(ConfigError, match=r"unknown backend 'cuda'; allowed: numpy, onnx, tflite"):
        backend_class("cuda")
