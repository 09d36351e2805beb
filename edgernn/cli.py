"""The `edgernn` command: a dispatcher that imports only the subcommand it runs.

Each package owns its subcommands in a module exposing `add_parser(subparsers)`. Only the chosen one is
imported, so `edgernn --help` and `edgernn run` on a Raspberry Pi never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module that owns it, one line for `edgernn --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("trainer.cli", "train an RNN, LSTM or GRU on sensor data (CSV or arrays) -> checkpoint"),
    "export": ("exporter.cli", "quantize and export a checkpoint into a verified bundle (ONNX, TFLite, NumPy)"),
    "inspect": ("edge_runtime.cli.inspect", "show a bundle's contents and quality; --verify its golden vectors"),
    "run": ("edge_runtime.cli.run", "run a bundle on a stream of readings, one at a time, state kept"),
    "bench": ("edgernn.bench", "measure per-reading latency, throughput and memory per backend"),
    "listen": ("edge_runtime.cli.listen", "subscribe to predictions; report gaps and duplicates"),
    "service": ("edge_runtime.cli.service", "install edgernn run as a systemd service on a device"),
    "simulate": ("firmware_sim.cli", "simulate a fleet of devices running the real runtime, with faults"),
    "demo": ("edgernn.demo", "the whole story in one command: data, training, export, a live fleet"),
}

# command -> the extra it needs beyond the base install (`pip install "edgernn[EXTRA]"`), shown in --help;
# the others run on a base install (run --mqtt needs [device], the ONNX / TFLite backends [onnx] / [tflite])
COMMAND_EXTRAS: dict[str, str] = {
    "train": "train",
    "export": "export",
    "listen": "device",
    "simulate": "sim",
    "demo": "all",
}
# a missing top-level module -> the extra that installs it (the pyproject's optional dependencies)
MODULE_EXTRAS: dict[str, str] = {
    "torch": "train",
    "pandas": "train",
    "matplotlib": "train",
    "tqdm": "train",
    "onnx": "export",
    "onnxscript": "export",
    "litert_torch": "export",
    "ai_edge_quantizer": "export",
    "onnxruntime": "onnx",
    "ai_edge_litert": "tflite",
    "tflite_runtime": "tflite",
    "paho": "device",
    "serial": "serial",
    "simpy": "sim",
    "amqtt": "sim",
    "aeon": "bench",
    "statsmodels": "bench",
}

EPILOG = """\
examples:
  edgernn demo                                     # everything, end to end, in a few minutes
  edgernn train --data readings.csv --time-column t --target activity --task classify --out runs/imu
  edgernn export runs/imu --out bundles/imu
  edgernn run bundles/imu --source csv:walk.csv
  edgernn simulate --bundle bundles/imu --devices 20 --duration 60s

`edgernn COMMAND --help` explains each command, with its defaults. [EXTRA] before a command: it needs
`pip install "edgernn[EXTRA]"`; a device install ("edgernn[device,tflite]") runs inspect, run, bench,
listen and service.
"""


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgernn",
        description="Recurrent sensor models, from PyTorch training to a Raspberry Pi, one reading at a time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgernn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (_, summary) in COMMANDS.items():
        extra = COMMAND_EXTRAS.get(name)
        sub.add_parser(name, help=(f"[{extra}] " if extra else "") + summary, add_help=False)
    return parser


def _version() -> str:
    from edgernn import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        parser = _top_parser()
        if not args:
            parser.print_help()
            return 2
        parser.parse_args(args)  # --help, --version, or an error naming the allowed commands
        return 0
    name = args[0]
    from edgernn.errors import EdgeRNNError

    try:
        module = importlib.import_module(COMMANDS[name][0])
        parser = argparse.ArgumentParser(prog="edgernn")
        sub = parser.add_subparsers(dest="command")
        module.add_parser(sub)
        ns = parser.parse_args(args)
        return int(ns.func(ns) or 0)
    except EdgeRNNError as exc:
        print(f"edgernn {name}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in MODULE_EXTRAS:
            raise  # not an optional dependency: a bug, keep the traceback
        extra = MODULE_EXTRAS[missing]
        print(
            f'edgernn {name}: error: this needs {missing}, which this install lacks: pip install "edgernn[{extra}]"',
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
