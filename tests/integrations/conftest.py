"""The real clients: Home Assistant core (its own venv) and Node-RED (npm), installed by
scripts/setup_integrations.sh, which scripts/test.sh runs.

Locally a missing client skips its tests with the command that installs it; in CI (CI=true) it fails them,
so the checks never vanish silently. EDGERNN_HA_VENV / EDGERNN_NODE_RED_DIR point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HINT = "scripts/setup_integrations.sh"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not installed, and CI must run this test: run {HINT}")
    pytest.skip(f"{what} is not installed: run {HINT}")


@pytest.fixture(scope="session")
def ha_python() -> Path:
    """The Python of the Home Assistant venv."""
    venv = Path(os.environ.get("EDGERNN_HA_VENV", ROOT / ".venvs" / "ha"))
    python = venv / "bin" / "python"
    if not (venv / "bin" / "hass").exists():
        _missing(f"Home Assistant (looked in {venv})")
    return python


@pytest.fixture(scope="session")
def node_red() -> Path:
    """The node-red launcher."""
    where = Path(os.environ.get("EDGERNN_NODE_RED_DIR", ROOT / ".venvs" / "node-red"))
    binary = where / "node_modules" / ".bin" / "node-red"
    if not binary.exists():
        _missing(f"Node-RED (looked in {where})")
    return binary
