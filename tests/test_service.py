"""`edgernn service install`: the unit a Pi user copies into systemd."""

from __future__ import annotations

import pytest

from edgernn.cli import main


def test_install_writes_unit_and_config(tmp_path, capsys):
    rc = main(
        ["service", "install", "--bundle", str(tmp_path / "b"), "--name", "kitchen-imu",
         "--unit-dir", str(tmp_path / "units"), "--config-dir", str(tmp_path / "etc")]
    )  # fmt: skip
    assert rc == 0
    unit = (tmp_path / "units" / "edgernn-kitchen-imu.service").read_text()
    assert "Restart=on-failure" in unit
    assert f"run --config {tmp_path / 'etc' / 'kitchen-imu.toml'}" in unit
    config = (tmp_path / "etc" / "kitchen-imu.toml").read_text()
    assert 'device = "kitchen-imu"' in config and str(tmp_path / "b") in config
    assert "systemctl enable --now edgernn-kitchen-imu" in capsys.readouterr().out


def test_install_keeps_an_edited_config(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "pi.toml").write_text("# mine\n")
    args = [
        "service",
        "install",
        "--bundle",
        "b",
        "--name",
        "pi",
        "--unit-dir",
        str(tmp_path),
        "--config-dir",
        str(etc),
    ]
    assert main(args) == 0
    assert (etc / "pi.toml").read_text() == "# mine\n"


def test_bad_name_is_refused(tmp_path, capsys):
    rc = main(["service", "install", "--bundle", "b", "--name", "bad name", "--unit-dir", str(tmp_path), "--dry-run"])
    assert rc == 2
    assert "'bad name'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--help"])
def test_help_teaches(flag, capsys):
    with pytest.raises(SystemExit):
        main(["service", flag])
    assert "systemctl enable" in capsys.readouterr().out


def test_config_skeleton_is_a_valid_device_config(tmp_path):
    from edge_runtime.cli.service import render
    from edge_runtime.device.settings import load_config

    _, config = render("/opt/edgernn/imu", "pi", "root", tmp_path)
    path = tmp_path / "pi.toml"
    path.write_text(config.replace("# discovery = true", "discovery = true"))
    settings = load_config(path)
    assert settings["bundle"] == "/opt/edgernn/imu" and settings["device"] == "pi"
    assert settings["mqtt"] == "mqtt://homeassistant.local:1883" and settings["discovery"] is True
    assert settings["source"] == "serial:/dev/ttyUSB0"


def _install(tmp_path, capsys) -> list[str]:
    args = ["service", "install", "--bundle", "b", "--name", "pi", "--unit-dir", str(tmp_path / "units")]
    assert main([*args, "--config-dir", str(tmp_path / "etc")]) == 0
    return capsys.readouterr().out.splitlines()


def test_install_twice_says_what_it_did_each_time(tmp_path, capsys):
    unit, config, env = (
        tmp_path / "units" / "edgernn-pi.service",
        tmp_path / "etc" / "pi.toml",
        tmp_path / "etc" / "pi.env",
    )
    assert _install(tmp_path, capsys)[:3] == [f"wrote {unit}", f"wrote {config}", f"wrote {env}"]
    env.chmod(0o644)  # loosened by hand: put back
    assert _install(tmp_path, capsys)[:3] == [
        f"unchanged {unit}",
        f"kept the existing {config}",
        f"kept the existing {env}",
    ]
    assert env.stat().st_mode & 0o777 == 0o600


def test_unit_runs_unprivileged_in_a_sandbox(tmp_path):
    from edge_runtime.cli.service import render

    unit, _ = render("/opt/edgernn/imu", "pi", None, tmp_path)
    for line in ("DynamicUser=yes", "SupplementaryGroups=dialout", "StateDirectory=edgernn-pi", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "PrivateTmp=yes"):  # fmt: skip
        assert line in unit, line
    assert "User=root" not in unit
    assert "User=pi\n" in render("/opt/edgernn/imu", "pi", "pi", tmp_path)[0]


def test_systemd_accepts_the_unit_and_rates_it_safe(tmp_path):
    import re
    import shutil
    import subprocess

    from edge_runtime.cli.service import render

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = render("/opt/edgernn/imu", "pi", None, tmp_path)[0]  # ExecStart: this interpreter's edgernn
    path = tmp_path / "edgernn-pi.service"
    path.write_text(unit)
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(path)], capture_output=True, text=True
    )
    if "offline" in security.stderr and security.returncode != 0:
        pytest.skip("this systemd-analyze cannot rate a unit file offline")
    level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert level is not None, security.stdout[-500:]
    assert float(level.group(1)) <= 3.0, security.stdout[-2000:]  # was 9.6 UNSAFE running as root
