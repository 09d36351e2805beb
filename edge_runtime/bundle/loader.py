"""Open a bundle directory and trust it only after checking it.

`Bundle.open(path)` reads `manifest.json` (schema and format version checked by `Manifest.load`), refuses
any path that leaves the bundle (also through a symlink), and compares every artifact file with the
sha256 and size in the manifest. Nothing is ever unpickled: arrays load with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_runtime.backends import backend_class, canonical_format
from edge_runtime.backends.base import Backend
from edge_runtime.bundle.manifest import GOLDEN_FILE, Artifact, Manifest, safe_relative
from edgernn.errors import BundleError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class Bundle:
    """A checked bundle: its manifest, and the way to open a backend on one of its artifacts."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Bundle:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise BundleError(f"{path} is not a bundle: not a directory")
        bundle = cls(root.resolve(), Manifest.load(root))
        if verify:
            bundle.verify()
        return bundle

    def file(self, relative: str) -> Path:
        """The absolute path of a bundle-relative file, refused if it (or a symlink on the way) leaves the bundle."""
        candidate = (self.path / safe_relative(relative)).resolve()
        if not candidate.is_relative_to(self.path):
            raise BundleError(f"{relative!r} resolves to {candidate}, outside the bundle {self.path}")
        return candidate

    def verify(self) -> None:
        """Every usable artifact's size and sha256 against the manifest; the golden file's too when recorded."""
        for artifact in self.manifest.artifacts:
            if artifact.usable:
                self._check(artifact.file, artifact.sha256, artifact.bytes, f"artifact {artifact.id!r}")
        golden = self.manifest.golden
        if golden.get("file") and golden.get("sha256"):
            self._check(golden["file"], golden["sha256"], int(golden.get("bytes", 0)), "golden vectors")

    def _check(self, relative: str, sha256: str, size: int, what: str) -> None:
        path = self.file(relative)
        if not path.is_file():
            raise BundleError(f"{what}: file {relative!r} is missing from the bundle {self.path}")
        if not sha256:
            raise BundleError(f"{what}: the manifest records no sha256 for {relative!r}; re-export the bundle")
        if size and path.stat().st_size != size:
            raise BundleError(f"{what}: {relative!r} has {path.stat().st_size} bytes, the manifest says {size}")
        actual = sha256_file(path)
        if actual != sha256:
            raise BundleError(f"{what}: {relative!r} has sha256 {actual[:12]}..., the manifest says {sha256[:12]}...")

    def usable_artifacts(self, fmt: str | None = None, precision: str | None = None) -> list[Artifact]:
        fmt = canonical_format(fmt) if fmt else None
        return [
            a
            for a in self.manifest.artifacts
            if a.usable and (fmt is None or a.format == fmt) and (precision is None or a.precision == precision)
        ]

    def open_backend(self, artifact_id: str) -> Backend:
        """A backend on one artifact, picked by the artifact's format."""
        artifact = self.manifest.artifact(artifact_id)
        if not artifact.usable:
            raise BundleError(f"artifact {artifact_id!r} is not usable: {artifact.reason or artifact.status}")
        cls = backend_class(artifact.format)
        if not cls.available():
            raise BundleError(f"artifact {artifact_id!r} needs the {cls.name} backend, not installed on this machine")
        return cls(self.manifest, artifact, self.file(artifact.file))

    def golden(self) -> dict[str, np.ndarray]:
        """The golden vectors (`x`, `x_scaled`, `y:<artifact id>`), loaded without unpickling."""
        relative = self.manifest.golden.get("file") or GOLDEN_FILE
        path = self.file(relative)
        if not path.is_file():
            raise BundleError(f"this bundle has no golden vectors ({relative} is missing)")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot read golden vectors {path}: {exc}") from exc
