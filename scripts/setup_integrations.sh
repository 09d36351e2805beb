#!/usr/bin/env bash
# The real clients the integration tests talk to, each in its own place (never in ./.venv: Home Assistant
# pins numpy, paho-mqtt and more). Idempotent and quick on a rerun: each step is skipped when already there.
#   Home Assistant core 2024.3.3 (the last release for Python 3.11)  -> $EDGERNN_HA_VENV (.venvs/ha)
#   Node-RED 4                                                         -> $EDGERNN_NODE_RED_DIR (.venvs/node-red)
# Telegraf (what feeds Grafana from MQTT) is not packaged by Debian and ships as a Go binary from its own
# site, which this project's machines cannot reach: docs/integrations.md gives its settings, and
# tests/integrations/test_grafana.py checks them against our payloads.
# Installing Home Assistant with its own package_constraints.txt (shipped inside its wheel) keeps pip from
# backtracking for minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ha_version=2024.3.3
ha_venv=${EDGERNN_HA_VENV:-.venvs/ha}
node_red_dir=${EDGERNN_NODE_RED_DIR:-.venvs/node-red}
python=${HA_PYTHON:-$(command -v python3.11 || echo python3)}  # HA 2024.3 needs 3.11 or 3.12

if ! "$ha_venv/bin/python" -c "import homeassistant.const as c, sys; sys.exit(c.__version__ != '$ha_version')" 2>/dev/null; then
  "$python" -m venv "$ha_venv"
  pip=("$ha_venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install --upgrade pip wheel
  tmp=$(mktemp -d)
  "${pip[@]}" download --no-deps -d "$tmp" "homeassistant==$ha_version"
  "$ha_venv/bin/python" - "$tmp" <<'PY'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
whl = next(tmp.glob("homeassistant-*.whl"))
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("package_constraints.txt"))
    (tmp / "constraints.txt").write_bytes(z.read(name))
PY
  # What a headless start loads besides the core (pinned as each integration's manifest.json pins it):
  # mqtt (paho-mqtt, and janus for file_upload), frontend (else HA starts in recovery mode, without mqtt),
  # and the integrations the frontend pulls in (Pillow, psutil, securetar, SQLAlchemy, numpy, ...).
  "${pip[@]}" install -c "$tmp/constraints.txt" "$tmp"/homeassistant-*.whl paho-mqtt==1.6.1 janus==1.0.0 \
    home-assistant-frontend==20240307.0 Pillow==10.2.0 psutil-home-assistant==0.0.1 securetar==2024.2.1 \
    SQLAlchemy==2.0.27 fnv-hash-fast==0.5.0 numpy==1.26.0 PyTurboJPEG==1.7.1
  rm -rf "$tmp"
fi

if [ ! -x "$node_red_dir/node_modules/.bin/node-red" ]; then
  mkdir -p "$node_red_dir"
  npm install --prefix "$node_red_dir" --no-audit --no-fund --loglevel=error node-red@4 >/dev/null
fi

node_red_version=$(node -p "require('$(cd "$node_red_dir" && pwd)/node_modules/node-red/package.json').version")
echo "integrations: Home Assistant $ha_version in $ha_venv, Node-RED $node_red_version in $node_red_dir"
