"""An artifact the exporter measured out of tolerance: `auto` never picks it, asking for it warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runtime.bundle.loader import Bundle
from edge_runtime.bundle.select import choose
from edgernn.errors import ConfigError
from tests.edge_runtime.conftest import make_model, numpy_bundle

REASON = "max abs deviation from PyTorch 0.447 exceeds its tolerance 0.393"


def _mark_out_of_tolerance(bundle: Path, artifact_id: str) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    for a in data["artifacts"]:
        if a["id"] == artifact_id:
            a.update(status="out_of_tolerance", reason=REASON)
    path.write_text(json.dumps(data))


@pytest.fixture
def bad_int8(tmp_path: Path) -> Path:
    b = numpy_bundle(tmp_path / "b", make_model())
    _mark_out_of_tolerance(b, "numpy-int8")
    return b


def test_auto_never_picks_an_artifact_out_of_tolerance(bad_int8: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"out of tolerance, never picked by auto: numpy-int8.*--artifact"):
        choose(Bundle.open(bad_int8), "auto", "int8", cache_dir=tmp_path)
    chosen, _ = choose(Bundle.open(bad_int8), "auto", "fp32", cache_dir=tmp_path)
    assert chosen.id == "numpy-fp32"
