"""Scenarios from TOML and from flags; every bad value is a ConfigError naming it and what is allowed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from edgernn.errors import ConfigError
from firmware_sim.faults import default_schedule
from firmware_sim.scenario import Scenario
from firmware_sim.timeparse import parse_duration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_example_scenarios_parse() -> None:
    for path in sorted(SCENARIOS.glob("*.toml")):
        sc = Scenario.from_toml(path)
        assert sc.fleets and sc.duration_s > 0, path
    factory = Scenario.from_toml(SCENARIOS / "factory.toml")
    assert [f.name for f in factory.fleets] == ["bearings", "cold-rooms"]
    assert factory.device_count == 50 and factory.duration_s == 7200
    assert factory.fleets[0].profile.name == "pi-zero-2w" and factory.fleets[0].signal_params["fault_fraction"] == 0.3
    outage = next(f for f in factory.faults if f.kind == "broker-outage")
    assert (outage.at, outage.duration, outage.devices) == (3000.0, 180.0, "all")
    gap = next(f for f in factory.faults if f.kind == "clock-gap")
    assert gap.params["step"] == 120.0 and gap.devices == ["dev0005"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("500ms", 0.5), ("15m", 900.0), ("1h30m", 5400.0), ("2d", 172800.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_flags_spread_faults_over_the_run() -> None:
    specs = default_schedule(["dropout", "broker-outage", "reboot"], 600.0)
    starts = [s.at for s in specs]
    assert starts == sorted(starts) and starts[0] >= 0.15 * 600 and starts[-1] < 0.85 * 600
    for a, b in itertools.pairwise(specs):
        assert a.end <= b.at  # no two overlap
    assert specs[1].devices == "all" and specs[0].devices == 0.1


def _toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(body)
    return path


FLEET = '[[fleet]]\nbundle = "b"\ndevices = 3\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('duration = "1x"\n' + FLEET, r"bad duration '1x'; use a number of seconds or e\.g\. 500ms, 30s, 15m"),
        ('duration = "-5"\n' + FLEET, r"bad duration '-5': must be >= 0"),
        ('duration = "1m"\n' + FLEET + 'profile = "pi-9"\n', r"unknown device profile 'pi-9'; allowed: pi-zero-2w, "),
        ('duration = "1m"\n' + FLEET + "rate = -10\n", r"fleet\[0\]: rate must be > 0 readings per second, got -10"),
        ('duration = "1m"\n[[fleet]]\nbundle = "b"\ndevices = 0\n', r"devices must be a whole number >= 1, got 0"),
        ('duration = "1m"\n' + FLEET + 'signal = "radar"\n', r"unknown signal 'radar'; allowed: imu, vibration"),
        ('duration = "1m"\n' + FLEET + 'backend = "tpu"\n', r"unknown backend 'tpu'; allowed: auto, numpy, onnx"),
        ('duration = "1m"\n' + FLEET + "colour = 1\n", r"fleet\[0\]: unknown keys \['colour'\]; allowed: name, bundle"),
        (
            'duration = "1m"\n' + FLEET + '[[fault]]\nkind = "meteor"\nat = "10s"\n',
            r"unknown fault 'meteor'; allowed: dropout, nan-burst, stuck, spike, clock-jitter, clock-gap, reboot, ",
        ),
        ('duration = "1m"\n' + FLEET + '[[fault]]\nkind = "reboot"\nat = "2m"\n', r"reboot at 120 s is after the end"),
        (
            'duration = "1m"\n' + FLEET + '[[fault]]\nkind = "spike"\nat = "1s"\nsize = -2\n',
            r"fault\[0\]\.size must be a number >= 0, got -2",
        ),
        (
            'duration = "1m"\n' + FLEET + '[[fault]]\nkind = "dropout"\nat = "1s"\ndevices = 1.5\n',
            r"a share of the fleet must be in \(0, 1\], got 1\.5",
        ),
        (
            'duration = "1m"\n' + FLEET + '[[fault]]\nkind = "broker-outage"\nat = "1s"\ndevices = 0.5\n',
            r"broker-outage hits the whole network; 'devices' must be \"all\"",
        ),
        (
            'duration = "1m"\n' + FLEET + '[[fault]]\nkind = "slow-network"\nat = "1s"\n',
            r"fault 'slow-network' needs a broker",
        ),
        (
            'duration = "1m"\n[broker]\nurl = "http://x"\n' + FLEET,
            r"broker url 'http://x'; allowed: \"spawn\", mqtt://",
        ),
        ("duration = 60\n", r"needs at least one \[\[fleet\]\] table"),
        ('duration = "1m"\nfleets = 2\n' + FLEET, r"scenario: unknown keys \['fleets'\]; allowed: name, duration"),
    ],
)
def test_bad_scenarios_name_the_value(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scenario.from_toml(_toml(tmp_path, body))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        Scenario.from_toml(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        Scenario.from_toml(_toml(tmp_path, "duration = \n"))


def test_flags_validate_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"unknown fault 'meteor'"):
        Scenario.from_flags(bundle="b", devices=2, duration="1m", faults="dropout,meteor")
    with pytest.raises(ConfigError, match=r"bad --duration '1 hour'"):
        Scenario.from_flags(bundle="b", devices=2, duration="1 hour")
