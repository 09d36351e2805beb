"""Shared fixtures. Package-specific fixtures live in each tests/<package>/conftest.py;
the real-Mosquitto fixture lives in tests/fixtures/mosquitto.py (a plugin, so any test can use it)."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.mosquitto", "tests.fixtures.smalldisk"]
