"""`scripts/setup.sh`'s `pip install -e .`: the editable install is a plain .pth of the repository root,
with no import hook and no setuptools warning at set-up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# setuptools' own editable build (what pip runs for `pip install -e .`), warnings recorded as JSON
BUILD = """
import json, sys, warnings
from setuptools import build_meta
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    wheel = build_meta.build_editable(sys.argv[1])
print(json.dumps({"wheel": wheel, "warnings": [f"{type(w.message).__name__}: {w.message}" for w in seen]}))
"""


def test_editable_install_is_a_plain_pth_without_a_warning(tmp_path: Path) -> None:
    # the backend pip builds with ([build-system] requires); an older one refuses the SPDX license string
    pytest.importorskip("setuptools", minversion="77", reason="needs setuptools>=77, the dev extra installs it")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in include:
        package = pattern.rstrip("*")
        shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheel"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)], cwd=project, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # setuptools' "Editable installation ... folders in your working directory with the same name as your
    # package ... may take precedence" (pip shows it as a BuildBackendWarning at every set-up)
    assert not [w for w in result["warnings"] if "Editable installation" in w], result["warnings"]
    with zipfile.ZipFile(out / result["wheel"]) as wheel:
        names = wheel.namelist()
        pth = [n for n in names if n.endswith(".pth")]
        assert len(pth) == 1 and not [n for n in names if n.endswith("_finder.py")], names
        assert wheel.read(pth[0]).decode().strip() == str(project)  # the root: every package imports from it
