#!/usr/bin/env bash
# The factory scenario end to end: builds the two anomaly bundles scenarios/factory.toml needs (once: an
# existing bundle is kept; delete bundles/vibration or bundles/cold to rebuild), then runs it. Extra
# arguments go to `edgernn simulate`.
#   scripts/factory.sh                      # bundles/vibration, bundles/cold, then the 2 h simulated plant
#   scripts/factory.sh --workers 2          # the same, the devices shared over two processes
# edgernn is the one on PATH (an activated .venv), else .venv/bin/edgernn, else `$PYTHON -m edgernn`
# (PYTHON defaults to python3); EDGERNN="python -m edgernn" overrides all three.
# Training is kept small (one torch thread, a few epochs) and the export skips the slow TFLite conversion (add
# tflite to --formats for a TFLite device): a few minutes on a busy laptop.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${EDGERNN:-}" ]; then
  read -r -a edgernn <<<"$EDGERNN"
elif command -v edgernn >/dev/null; then
  edgernn=(edgernn)
elif [ -x .venv/bin/edgernn ]; then
  edgernn=(.venv/bin/edgernn)
else
  edgernn=("${PYTHON:-python3}" -m edgernn)
fi
if ! "${edgernn[@]}" --help >/dev/null 2>&1; then
  echo "factory.sh: cannot run edgernn as '${edgernn[*]}': run scripts/setup.sh first (or set EDGERNN or PYTHON)" >&2
  exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one torch thread: more only contend on a busy machine
data=out/factory-data
mkdir -p "$data"
small=(--cell gru --hidden 32 --window 50 --stride 50 --epochs 6 --patience 2)
alarm=(--false-alarms-per-day 1)  # the alarm rule simulate counts alarms by: at most one false alarm a day
if [ ! -f bundles/vibration/manifest.json ]; then
  # 32 machines: the alarm rule is calibrated on the validation split (15% of each machine's hour), and machines
  # differ in how well the model knows them; 8 machines (0.04 device-days of validation) set a threshold that
  # fresh fleets crossed 15-57 times a device-day, 32 machines (0.16 device-days) one they did not cross
  "${edgernn[@]}" simulate --dataset vibration --param fault_fraction=0.2 --out "$data/vibration.csv" --devices 32 \
      --duration 1h --rate 10
  # level targets: a healthy bearing is stationary, and a developing fault is a departure from the learnt level
  # (a delta model would follow its slow rise)
  "${edgernn[@]}" train --data "$data/vibration.csv" --time-column t --series-column device --anomaly-column anomaly \
      --features rms,peak,kurtosis,bpfo,temp --target rms --target kurtosis --target bpfo --task anomaly \
      --target-mode level "${small[@]}" "${alarm[@]}" --out runs/vibration
  "${edgernn[@]}" export runs/vibration --out bundles/vibration --formats onnx,numpy
fi
if [ ! -f bundles/cold/manifest.json ]; then
  "${edgernn[@]}" simulate --dataset temperature --out "$data/cold.csv" --devices 8 --duration 6h --rate 1
  # delta targets: the temperature sensor drifts (0.3 C/h), so the model forecasts the change from each reading
  "${edgernn[@]}" train --data "$data/cold.csv" --time-column t --series-column device --anomaly-column anomaly \
      --features temp,humidity,power --target temp --task anomaly --target-mode delta "${small[@]}" \
      "${alarm[@]}" --out runs/cold
  "${edgernn[@]}" export runs/cold --out bundles/cold --formats onnx,numpy
fi
exec "${edgernn[@]}" simulate --scenario scenarios/factory.toml "$@"
