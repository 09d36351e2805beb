#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs pytest.
# Lint (ruff), types (mypy), then pytest. Extra arguments go to pytest (e.g. scripts/test.sh tests/trainer -x).
# pytest exits 5 when it collects nothing; `set -e` makes that (like any failure) fail this script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --broker
scripts/setup_integrations.sh  # Home Assistant and Node-RED, each in .venvs/ (tests/integrations)
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy .    # config in pyproject.toml ([tool.mypy]); the whole repository, tests included
exec .venv/bin/python -m pytest "$@"
