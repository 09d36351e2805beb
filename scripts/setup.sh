#!/usr/bin/env bash
# Installs edgernn with every extra into ./.venv (idempotent; run it again after a pull).
#   scripts/setup.sh            Python packages only (what `edgernn demo` needs)
#   scripts/setup.sh --broker   also Mosquitto and openssl from Debian (what the tests need; as root)
# torch is installed first and pinned (constraints.txt): torch==2.13.0 is a CPU build from local disk,
# while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
"${pip[@]}" install -c constraints.txt torch==2.13.0
"${pip[@]}" install -c constraints.txt -e ".[all,dev]"
if [ "${1:-}" = "--broker" ] && ! { command -v mosquitto && command -v mosquitto_sub && command -v openssl && command -v cc; } >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mosquitto mosquitto-clients openssl gcc libc6-dev >/dev/null  # gcc: the slow-fsync shim
fi
echo "edgernn installed in .venv ($(.venv/bin/edgernn --version))"
