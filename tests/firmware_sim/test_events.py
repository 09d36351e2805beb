"""A fleet's output stays readable: connection events counted per interval, progress lines without a terminal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from firmware_sim import engine, events
from firmware_sim.events import Counting, summary_line
from firmware_sim.faults import FaultSpec
from tests.firmware_sim.test_simulation import _scenario


def test_two_hundred_devices_losing_the_broker_make_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("edge_runtime.publish")
    with Counting() as counter:
        for dev in range(200):  # the device's own templates (edge_runtime.publish.paho_publisher), per-device details
            log.warning("lost the connection to %s (%s); %d predictions wait in the outbox", "127.0.0.1:1883", "x", dev)
        log.warning("broker %s not reachable (%s); predictions wait in the outbox", "127.0.0.1:1883", "refused")
        line = summary_line(counter.take(), "the last 30 s")
    assert capsys.readouterr().err == ""  # not one line per device
    assert line == (
        "connection events in the last 30 s: lost the connection to 127.0.0.1:1883 x200; "
        "broker 127.0.0.1:1883 not reachable x1"
    )
    assert summary_line(counter.take(), "the last 30 s") == ""  # counted once
    assert log.propagate  # a device's own logging is back as it was


def test_progress_lines_when_stderr_is_not_a_terminal(
    imu_bundle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PROGRESS_EVERY_S", 0.0)  # a line every simulated second, not every 30 s
    monkeypatch.setattr(events, "PROGRESS_EVERY_S", 0.0)
    sc = _scenario(imu_bundle, 2, 4.0, [FaultSpec("broker-outage", at=1, duration=2)])
    sc.progress = True
    engine.Simulation(sc).run()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("simulated ")]
    assert len(lines) >= 3, err
    assert " of 4 s (" in lines[-1] and "delivered" in lines[-1] and "in the outboxes" in lines[-1]
    assert any("faults on: broker-outage" in line for line in lines)
