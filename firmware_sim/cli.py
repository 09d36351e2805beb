"""`edgernn simulate`: a fleet of simulated devices running the real runtime, with faults, and a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  edgernn simulate --bundle bundles/imu --devices 20 --duration 60s
  edgernn simulate --bundle bundles/imu --devices 200 --profile pi-zero-2w --duration 1h \\
      --faults dropout,nan-burst,broker-outage,reboot --broker mqtt://127.0.0.1:1883 --report out/sim
  edgernn simulate --bundle bundles/imu --devices 50 --duration 10m --broker spawn --realtime
  edgernn simulate --scenario scenarios/factory.toml --report out/factory
  edgernn simulate --dataset imu --out data/imu.csv --devices 8 --duration 10m --rate 25
  edgernn simulate --bundle bundles/mine --signal replay:my-readings.csv --devices 200 --duration 10m \
      --faults dropout,nan-burst,reboot --report out/mine

profiles:  pi-zero-2w, pi-3b-plus, pi-4, pi-5 (speed factor = host score / Geekbench 6 single-core score)
faults:    dropout, nan-burst, stuck, spike, clock-jitter, clock-gap, reboot, broker-outage, slow-network
           (from the command line they are spread over the run; a scenario file schedules each one)
signals:   imu (activity labels), vibration (bearing fault onset), temperature (door excursions),
           replay:FILE.csv (your own readings in the training CSV's long format, labels as ground truth;
           --param device=COL, time=COL, label=COL, anomaly=COL, offset=start|random), and replay:bundle
           (the held-out readings the bundle carries: the default when no built-in signal fits)
broker:    none (in-memory publisher), "spawn" (a Mosquitto started for the run: outages stop it),
           or mqtt://host:port (outages cut the devices' connections through a proxy)

Virtual time runs as fast as the host can; --realtime runs on the wall clock (demos, live dashboards).
The report (--report DIR) is report.json, summary.txt, latency.png, delivery.png, predictions-<fleet>.png.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a fleet of devices running the real runtime, with faults",
        description="Simulate a fleet of devices, each running the real edge runtime on a seeded signal with "
        "ground truth, publishing every prediction; inject faults; report latency on the device profile, "
        "delivery, bad readings and accuracy.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("what to simulate (a scenario file, or one fleet from flags)")
    src.add_argument("--scenario", type=Path, help="a TOML scenario file (fleets, faults, broker)")
    src.add_argument("--bundle", type=Path, help="the bundle every device runs")
    src.add_argument("--devices", type=int, default=10, help="number of devices (default: 10)")
    src.add_argument("--profile", default="pi-4", help="device profile (default: pi-4)")
    src.add_argument("--rate", type=float, help="readings per second per device (default: the bundle's rate)")
    src.add_argument(
        "--signal",
        help="imu | vibration | temperature | replay:FILE.csv (your recordings, or a directory of CSVs) | "
        "replay:bundle (default: matched to the bundle's feature names, else replay:bundle)",
    )
    src.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a signal parameter, e.g. fault_fraction=0.3, or for replay label=COLUMN (repeat for several)",
    )
    src.add_argument("--faults", default="", help="comma-separated faults to inject (default: none)")
    src.add_argument("--backend", default="auto", help="auto | numpy | onnx | tflite (default: auto)")
    src.add_argument("--precision", default="fp32", help="fp32 | int8 (default: fp32)")
    src.add_argument("--factor", type=float, help="device speed factor, replacing the profile's (e.g. measured)")
    run = p.add_argument_group("how to run it")
    run.add_argument("--duration", help="simulated time, e.g. 90s, 15m, 1h (default: 60s, or the scenario's)")
    run.add_argument("--broker", help="none (default), spawn, or mqtt://host:port")
    run.add_argument("--report", type=Path, help="directory for report.json, summary.txt and the plots")
    run.add_argument("--realtime", action="store_true", default=None, help="run on the wall clock")
    run.add_argument("--speed", type=float, help="with --realtime: simulated seconds per wall second (default 1)")
    run.add_argument("--seed", type=int, help="random seed for signals, faults and jitter (default: 0)")
    run.add_argument("--host-score", type=float, help="Geekbench 6 single-core score of this host (default 1500)")
    run.add_argument("--checkpoint-every", type=int, default=1000, help="readings per device between state "
                     "checkpoints (default: 1000, the runtime's)")  # fmt: skip
    run.add_argument(
        "--workers",
        type=int,
        help="processes to shard the devices over, for many-core hosts (default: 1)",
    )
    run.add_argument("--strict", action="store_true", help="exit 1 if a prediction was lost or counts do not balance")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    data = p.add_argument_group("training data instead of a simulation")
    data.add_argument("--dataset", help="write a training CSV of this signal (imu, vibration, temperature)")
    data.add_argument("--out", type=Path, help="with --dataset: the CSV to write")
    p.set_defaults(func=handle)


def handle(ns: argparse.Namespace) -> int:
    from edgernn.errors import ConfigError

    if ns.dataset:
        return _dataset(ns)
    from firmware_sim.engine import run_simulation
    from firmware_sim.scenario import Scenario

    if ns.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be >= 1 reading, got {ns.checkpoint_every}")
    progress = not ns.no_progress
    if ns.scenario is not None:
        fleet_flags = [f for f in ("bundle", "rate", "signal", "factor") if getattr(ns, f) is not None]
        fleet_flags += ["param"] if ns.param else []
        fleet_flags += [
            f for f, default in (("faults", ""), ("profile", "pi-4"), ("devices", 10)) if getattr(ns, f) != default
        ]
        if fleet_flags:
            raise ConfigError(
                f"--{fleet_flags[0]} describes a fleet; with --scenario put it in the scenario file "
                "(flags that may override a scenario: --duration, --seed, --report, --realtime, --speed, --broker)"
            )
        overrides = {
            "duration": ns.duration,
            "seed": ns.seed,
            "report": str(ns.report) if ns.report else None,
            "realtime": ns.realtime,
            "speed": ns.speed,
            "host_score": ns.host_score,
            "progress": progress,
        }
        scenario = Scenario.from_toml(ns.scenario, **overrides)
        if ns.broker is not None:
            from firmware_sim.scenario import BrokerSpec, broker_url

            scenario.broker = BrokerSpec(url=broker_url(ns.broker), prefix=scenario.broker.prefix)
    else:
        if ns.bundle is None:
            raise ConfigError("give --bundle (the bundle every device runs) or --scenario FILE")
        scenario = Scenario.from_flags(
            bundle=ns.bundle,
            devices=ns.devices,
            duration=ns.duration or "60s",
            profile=ns.profile,
            faults=ns.faults,
            broker=None if ns.broker in (None, "none") else ns.broker,
            report=ns.report,
            realtime=bool(ns.realtime),
            seed=ns.seed or 0,
            rate=ns.rate,
            signal=ns.signal,
            backend=ns.backend,
            precision=ns.precision,
            host_score=ns.host_score if ns.host_score is not None else 1500.0,
            factor=ns.factor,
            signal_params=_params(ns.param),
            progress=progress,
        )
        if ns.speed is not None:
            scenario.speed = ns.speed
    report = run_simulation(scenario, checkpoint_every=ns.checkpoint_every, workers=ns.workers)
    print(report.summary())
    if scenario.report_dir is not None:
        print(f"report: {scenario.report_dir}/report.json (and summary.txt, *.png)")
    fleet = report.fleet
    if ns.strict and (fleet["missing"] or not fleet["accounting"]["balanced"]):
        print("strict: predictions were lost or the counts do not balance", file=sys.stderr)
        return 1
    return 0


def _dataset(ns: argparse.Namespace) -> int:
    from edgernn.errors import ConfigError
    from firmware_sim.signals import dataset, to_csv
    from firmware_sim.timeparse import parse_duration

    if ns.out is None:
        raise ConfigError("--dataset needs --out FILE.csv")
    duration = parse_duration(ns.duration or "10m", "--duration")
    defaults = {"imu": 25.0, "vibration": 10.0, "temperature": 1.0}
    rate = ns.rate if ns.rate is not None else defaults.get(ns.dataset, 10.0)
    df = dataset(ns.dataset, devices=ns.devices, duration_s=duration, rate=rate, seed=ns.seed or 0, **_params(ns.param))
    path = to_csv(df, ns.out)
    print(f"wrote {path}: {len(df)} readings from {ns.devices} devices at {rate:g}/s ({', '.join(df.columns)})")
    return 0


def _params(items: list[str]) -> dict[str, float | str]:
    """`KEY=VALUE` pairs of signal parameters: numbers, or words (a replay's column names)."""
    from edgernn.errors import ConfigError

    out: dict[str, float | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. fault_fraction=0.3 or label=activity")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out
