"""`edgernn service install`: run `edgernn run` as a systemd service on a Raspberry Pi.

Writes a unit that restarts on failure and a device config skeleton (TOML) beside it. Nothing here needs
root until the files are copied into /etc; `--dry-run` prints both files instead of writing them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from edgernn.errors import ConfigError

UNIT_TEMPLATE = """\
[Unit]
Description=edgernn device {name}: {bundle}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
ExecStart={exe} run --config {config}
# A crash or a refused broker login exits non-zero; systemd starts it again after a pause, and the
# durable outbox and state checkpoint carry every unsent prediction and the hidden state across.
Restart=on-failure
RestartSec=5
# SIGTERM lets `edgernn run` save its state and publish `offline` before it exits.
KillSignal=SIGTERM
TimeoutStopSec=20
StateDirectory={state_name}
Environment=PYTHONUNBUFFERED=1
# Keep credentials out of this file: put EDGERNN_MQTT_PASSWORD=... in {env_file} (mode 600).
EnvironmentFile=-{env_file}

[Install]
WantedBy=multi-user.target
"""

CONFIG_TEMPLATE = """\
# edgernn device configuration: `edgernn run --config {config}` reads it; every key is also a flag.
bundle = "{bundle}"
device = "{name}"                     # the device id in MQTT topics: <prefix>/<device>/prediction
backend = "auto"                      # auto | numpy | onnxruntime | tflite
precision = "fp32"                    # fp32 | int8
state_dir = "/var/lib/{state_name}"   # hidden-state checkpoints and the durable outbox live here

# Where readings come from: csv:PATH, stdin, serial:/dev/ttyUSB0, or mqtt:URL (a gateway)
source = "serial:/dev/ttyUSB0"

# Where predictions go. Remove to print JSON lines on stdout instead.
mqtt = "mqtt://homeassistant.local:1883"
prefix = "edgernn"
# username = "sensor"                 # the password comes from EDGERNN_MQTT_PASSWORD in {env_file}
# ca_file = "/etc/edgernn/ca.crt"     # with mqtts:// URLs
# discovery = true                    # Home Assistant MQTT discovery
"""


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "service",
        help="install edgernn run as a systemd service on a device",
        description="Write a systemd unit that runs `edgernn run --config FILE` and restarts it on failure, "
        "plus a device config skeleton to edit.",
        epilog="example:\n  sudo edgernn service install --bundle /opt/edgernn/imu --name kitchen-imu\n"
        "  sudo systemctl enable --now edgernn-kitchen-imu\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    install = verbs.add_parser("install", help="write the unit and config skeleton")
    install.add_argument("--bundle", required=True, help="path of the bundle on this device")
    install.add_argument("--name", default="device1", help="device id, also the service name (default: device1)")
    install.add_argument("--user", default="root", help="user the service runs as (default: root)")
    install.add_argument(
        "--unit-dir", default="/etc/systemd/system", help="where the unit goes (default: /etc/systemd/system)"
    )
    install.add_argument("--config-dir", default="/etc/edgernn", help="where the config goes (default: /etc/edgernn)")
    install.add_argument("--dry-run", action="store_true", help="print the files instead of writing them")
    install.set_defaults(func=install_service)


def render(bundle: str, name: str, user: str, config_dir: Path) -> tuple[str, str]:
    """The unit file and the config skeleton for one device."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"service name {name!r} must be letters, digits, '-' or '_'")
    beside = Path(sys.executable).parent / "edgernn"  # the script of the venv this edgernn runs from
    exe = str(beside) if beside.exists() else shutil.which("edgernn") or f"{sys.executable} -m edgernn"
    state_name = f"edgernn-{name}"
    config = config_dir / f"{name}.toml"
    env_file = config_dir / f"{name}.env"
    fields = dict(bundle=bundle, name=name, user=user, exe=exe, config=config, state_name=state_name, env_file=env_file)
    return UNIT_TEMPLATE.format(**fields), CONFIG_TEMPLATE.format(**fields)


def install_service(ns: argparse.Namespace) -> int:
    bundle = str(Path(ns.bundle).resolve())
    config_dir = Path(ns.config_dir)
    unit, config = render(bundle, ns.name, ns.user, config_dir)
    unit_path = Path(ns.unit_dir) / f"edgernn-{ns.name}.service"
    config_path = config_dir / f"{ns.name}.toml"
    if ns.dry_run:
        print(f"# {unit_path}\n{unit}\n# {config_path}\n{config}")
        return 0
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(unit)
        if config_path.exists():
            print(f"kept the existing config {config_path}")
        else:
            config_path.write_text(config)
    except PermissionError as exc:
        raise ConfigError(f"cannot write {exc.filename}: run with sudo, or pass --unit-dir/--config-dir") from exc
    print(f"wrote {unit_path}\nwrote {config_path}")
    print(f"next: edit {config_path}, then\n  sudo systemctl daemon-reload")
    print(f"  sudo systemctl enable --now edgernn-{ns.name}\n  journalctl -u edgernn-{ns.name} -f")
    return 0
