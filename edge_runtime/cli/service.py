"""`edgernn service install`: run `edgernn run` as a systemd service on a Raspberry Pi.

Writes a unit that restarts on failure and a device config skeleton (TOML) beside it, and an empty
credentials file (mode 0600). Nothing here needs root until the files are copied into /etc; `--dry-run`
prints the files instead of writing them. Running it again keeps an edited config and credentials file.

The unit runs as a user of its own that systemd makes at start (`DynamicUser`), never as root: the
service can write only its state directory, reaches serial ports through the `dialout` group, and gets
the sandbox `systemd-analyze security` asks for. `--user NAME` runs it as an existing user instead.
"""

from __future__ import annotations

import argparse
import os
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
{user_lines}
ExecStart={exe} run --config {config}
# A crash or a refused broker login exits non-zero; systemd starts it again after a pause, and the
# durable outbox and state checkpoint carry every unsent prediction and the hidden state across.
Restart=on-failure
RestartSec=5
# SIGTERM lets `edgernn run` save its state and publish `offline` before it exits.
KillSignal=SIGTERM
TimeoutStopSec=20
# /var/lib/{state_name}, owned by the service's user: the config's state_dir
StateDirectory={state_name}
StateDirectoryMode=0700
Environment=PYTHONUNBUFFERED=1
# Keep credentials out of this file: put EDGERNN_MQTT_PASSWORD=... in {env_file} (mode 0600, read by systemd)
EnvironmentFile=-{env_file}
# The sandbox: nothing on disk writable but the state directory, no privileges to gain, no kernel knobs.
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0077

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
    install.add_argument(
        "--user", help="run as this existing user (default: a user of the service's own, made by systemd)"
    )
    install.add_argument(
        "--unit-dir", default="/etc/systemd/system", help="where the unit goes (default: /etc/systemd/system)"
    )
    install.add_argument("--config-dir", default="/etc/edgernn", help="where the config goes (default: /etc/edgernn)")
    install.add_argument("--dry-run", action="store_true", help="print the files instead of writing them")
    install.set_defaults(func=install_service)


ENV_TEMPLATE = """\
# Read by systemd for edgernn-{name}.service (mode 0600: the password never sits in a world-readable file).
# EDGERNN_MQTT_PASSWORD=...
"""


def render(bundle: str, name: str, user: str | None, config_dir: Path) -> tuple[str, str]:
    """The unit file and the config skeleton for one device."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"service name {name!r} must be letters, digits, '-' or '_'")
    beside = Path(sys.executable).parent / "edgernn"  # the script of the venv this edgernn runs from
    exe = str(beside) if beside.exists() else shutil.which("edgernn") or f"{sys.executable} -m edgernn"
    state_name = f"edgernn-{name}"
    config = config_dir / f"{name}.toml"
    env_file = config_dir / f"{name}.env"
    # serial ports (/dev/ttyUSB0, /dev/ttyACM0) belong to group dialout: access by group, not by root
    user_lines = (
        "DynamicUser=yes\nSupplementaryGroups=dialout" if user is None else f"User={user}\nSupplementaryGroups=dialout"
    )
    fields = dict(
        bundle=bundle,
        name=name,
        user_lines=user_lines,
        exe=exe,
        config=config,
        state_name=state_name,
        env_file=env_file,
    )
    return UNIT_TEMPLATE.format(**fields), CONFIG_TEMPLATE.format(**fields)


def _closed_to_others(exe: Path) -> Path | None:
    """The first directory on the way to `exe` that other users cannot enter (a 0700 home), or None."""
    for d in reversed(exe.absolute().parents):
        try:
            if not d.stat().st_mode & 0o001:
                return d
        except OSError:
            return d
    return None


def _write(path: Path, text: str, mode: int = 0o644, keep: bool = False) -> str:
    """Write `path` (created with `mode`); what happened, in words. `keep`: an existing file is the user's."""
    if path.exists():
        if keep:
            if mode == 0o600:
                path.chmod(0o600)  # whatever it was: credentials readable by the owner only
            return f"kept the existing {path}"
        if path.read_text() == text:
            return f"unchanged {path}"
        path.write_text(text)
        return f"updated {path}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return f"wrote {path}"


def install_service(ns: argparse.Namespace) -> int:
    bundle = str(Path(ns.bundle).resolve())
    config_dir = Path(ns.config_dir)
    unit, config = render(bundle, ns.name, ns.user, config_dir)
    unit_path = Path(ns.unit_dir) / f"edgernn-{ns.name}.service"
    config_path = config_dir / f"{ns.name}.toml"
    env_path = config_dir / f"{ns.name}.env"
    env = ENV_TEMPLATE.format(name=ns.name)
    if ns.dry_run:
        print(f"# {unit_path}\n{unit}\n# {config_path}\n{config}\n# {env_path} (mode 0600)\n{env}")
        return 0
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.parent.mkdir(parents=True, exist_ok=True)
        done = [
            _write(unit_path, unit),
            _write(config_path, config, keep=True),
            _write(env_path, env, mode=0o600, keep=True),
        ]
    except PermissionError as exc:
        raise ConfigError(f"cannot write {exc.filename}: run with sudo, or pass --unit-dir/--config-dir") from exc
    print("\n".join(done))
    exe = unit.split("ExecStart=", 1)[1].split(" run --config", 1)[0].split()[0]
    closed = _closed_to_others(Path(exe)) if ns.user is None else None
    if closed is not None:
        print(
            f"warning: the service's own user cannot reach {exe}: {closed} is closed to other users; "
            "install edgernn where every user can read it (a venv in /opt/edgernn/venv) or pass --user"
        )
    print(f"next: edit {config_path}, then\n  sudo systemctl daemon-reload")
    print(f"  sudo systemctl enable --now edgernn-{ns.name}\n  journalctl -u edgernn-{ns.name} -f")
    return 0
