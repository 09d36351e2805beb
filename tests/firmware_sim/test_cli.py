"""`edgernn simulate` end to end, and its error messages (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgernn.cli import main


def test_simulate_from_flags_writes_the_report(
    imu_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    rc = main(
        ["simulate", "--bundle", str(imu_bundle), "--devices", "4", "--duration", "12s", "--profile", "pi-5",
         "--faults", "nan-burst,reboot", "--report", str(out), "--seed", "2", "--no-progress", "--strict"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    assert "4 devices, 12s simulated" in text and "[balanced]" in text and "Raspberry Pi 5" in text
    data = json.loads((out / "report.json").read_text())
    assert data["scenario"]["seed"] == 2 and [f["kind"] for f in data["scenario"]["faults"]] == ["nan-burst", "reboot"]
    assert data["fleet"]["readings_produced"] == data["fleet"]["predictions"] + sum(data["fleet"]["dropped"].values())
    assert data["fleet"]["reboots"] >= 1
    assert (out / "summary.txt").read_text().strip() in text
    fl = data["fleet"]  # the printed accounting line states the report's numbers
    assert f"readings {fl['readings_produced']} = predictions {fl['predictions']} + dropped" in text
    assert fl["readings_produced"] + fl["not_sampled"] == round(4 * 12 * data["fleets"]["fleet0"]["rate"])  # the clock


def test_simulate_from_a_scenario_file(imu_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        f'name = "two"\nduration = "5s"\n[[fleet]]\nname = "wrist"\nbundle = "{imu_bundle}"\ndevices = 2\n'
        f'profile = "pi-zero-2w"\n[[fleet]]\nname = "hip"\nbundle = "{imu_bundle}"\ndevices = 3\nprofile = "pi-4"\n'
        '[[fault]]\nkind = "dropout"\nat = "2s"\nduration = "1s"\ndevices = ["dev0003"]\n'
    )
    assert main(["simulate", "--scenario", str(path), "--seed", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "simulation 'two': 5 devices" in text and "[wrist]" in text and "[hip]" in text


def test_dataset_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vib.csv"
    assert main(["simulate", "--dataset", "vibration", "--param", "fault_fraction=0", "--out", str(out),
                 "--devices", "2", "--duration", "30s", "--rate", "2"]) == 0  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines[0] == "t,device,rms,peak,kurtosis,bpfo,temp,anomaly,stage" and len(lines) == 1 + 2 * 60
    assert all(line.endswith(",0,healthy") for line in lines[1:])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bundle", "B", "--profile", "pi-9"], "unknown device profile 'pi-9'; allowed: pi-zero-2w, pi-3b-plus"),
        (["--bundle", "B", "--faults", "dropout,meteor"], "unknown fault 'meteor'; allowed: dropout, nan-burst"),
        (["--bundle", "B", "--rate", "-5"], "rate must be > 0 readings per second, got -5.0"),
        (["--bundle", "B", "--duration", "ten minutes"], "bad --duration 'ten minutes'; use a number of seconds"),
        (["--bundle", "B", "--broker", "amqp://x"], "broker url 'amqp://x'; allowed: \"spawn\", mqtt://host:port"),
        (["--bundle", "no/such/bundle"], "bundle 'no/such/bundle' does not load: no/such/bundle is not a bundle"),
        (["--devices", "3"], "give --bundle (the bundle every device runs) or --scenario FILE"),
        (["--scenario", "x.toml", "--devices", "3"], "--devices describes a fleet; with --scenario put it in the"),
        (["--dataset", "imu"], "--dataset needs --out FILE.csv"),
        (["--dataset", "imu", "--out", "x.csv", "--param", "noise"], "--param 'noise': expected KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgernn simulate: error: ") and message in err and err.count("\n") == 1
