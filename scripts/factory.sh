#!/usr/bin/env bash
# The factory scenario end to end: builds the two anomaly bundles scenarios/factory.toml needs (once: an
# existing bundle is kept), then runs it. Extra arguments go to `edgernn simulate`.
#   scripts/factory.sh                      # bundles/vibration, bundles/cold, then the 2 h simulated plant
#   scripts/factory.sh --workers 2          # the same, the devices shared over two processes
set -euo pipefail
cd "$(dirname "$0")/.."
edgernn=${EDGERNN:-edgernn}
command -v "$edgernn" >/dev/null || edgernn=".venv/bin/edgernn"
if [ ! -f bundles/vibration/manifest.json ]; then
  "$edgernn" simulate --dataset vibration --param fault_fraction=0.2 --out data/vibration.csv --devices 8 \
      --duration 2h --rate 10
  "$edgernn" train --data data/vibration.csv --time-column t --series-column device --anomaly-column anomaly \
      --features rms,peak,kurtosis,bpfo,temp --target rms --target kurtosis --target bpfo --task anomaly \
      --out runs/vibration
  "$edgernn" export runs/vibration --out bundles/vibration
fi
if [ ! -f bundles/cold/manifest.json ]; then
  "$edgernn" simulate --dataset temperature --out data/cold.csv --devices 8 --duration 12h --rate 1
  "$edgernn" train --data data/cold.csv --time-column t --series-column device --anomaly-column anomaly \
      --features temp,humidity,power --target temp --task anomaly --out runs/cold
  "$edgernn" export runs/cold --out bundles/cold
fi
exec "$edgernn" simulate --scenario scenarios/factory.toml "$@"
