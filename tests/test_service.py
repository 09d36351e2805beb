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
    from edge_runtime.cli_service import render
    from edge_runtime.run_config import load_config

    _, config = render("/opt/edgernn/imu", "pi", "root", tmp_path)
    path = tmp_path / "pi.toml"
    path.write_text(config.replace("# discovery = true", "discovery = true"))
    settings = load_config(path)
    assert settings["bundle"] == "/opt/edgernn/imu" and settings["device"] == "pi"
    assert settings["mqtt"] == "mqtt://homeassistant.local:1883" and settings["discovery"] is True
    assert settings["source"] == "serial:/dev/ttyUSB0"
