"""`edgernn demo`, shortened: every phase runs and every prediction reaches the subscriber via the broker."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from edgernn.demo import Phases, closing, demo

pytestmark = pytest.mark.slow


def test_demo_pipeline_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ph = Phases(out=io.StringIO())
    report = demo(tmp_path, ph, devices=2, duration=4.0, epochs=2, formats=("numpy", "onnx"),
                  train_minutes=1.0, train_seconds=0.001, progress=False)  # fmt: skip
    out = capsys.readouterr().out
    assert list(ph.times) == ["data", "train", "export", "verify", "fleet"]
    assert list(ph.cpu) == list(ph.times) and ph.cpu["train"] > 0 and ph.cpu["export"] > 0
    # the training budget (a busy laptop): one epoch, the best so far kept, and a line that says so
    assert "at most 0.001 s of epochs" in ph.out.getvalue()  # type: ignore[attr-defined]
    assert "time budget: stopped after epoch 1 of 2," in out
    assert "a busy machine: --train-seconds 0.003 gives training more time" in out
    # the bundle carries what was asked, and this machine reproduces its golden vectors
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert {a["id"] for a in manifest["artifacts"]} == {"numpy-fp32", "numpy-int8", "onnx-fp32", "onnx-int8"}
    assert "FAIL" not in out and re.search(r"onnx-fp32\s+PASS", out)
    # the live fleet: every prediction published was received by a separate subscriber through the broker
    assert report["produced"] >= 2 * 4 * 20  # 2 devices, 4 s, 25 readings/s, less start-up
    assert report["received"] == report["produced"] and report["missing"] == 0
    assert report["delivered_all"]
    written = {p.name for _, p in ph.written}
    assert {"imu.csv", "checkpoint.pt", "bundle", "report.json", "latency.png"} <= written
    text = closing(ph, report, 1.0, tmp_path)
    assert f"every prediction delivered: {report['received']} of {report['produced']}" in text
    assert f"CPU {sum(ph.cpu.values()):.0f} s (data {ph.cpu['data']:.1f} s, train" in text
    assert f"inspect {tmp_path / 'bundle'} --verify" in text


def test_demo_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    from edgernn.cli import main

    assert main(["demo", "--devices", "0"]) == 2
    assert "--devices must be >= 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--train-seconds", "0"]) == 2
    assert "--train-seconds must be > 0 seconds, got 0.0" in capsys.readouterr().err


def test_demo_trains_on_one_torch_thread_and_puts_them_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy laptop torch's threads waited on each other: training was 274 s of a 322 s demo."""
    import torch

    import trainer

    seen: list[int] = []

    class Stop(Exception):
        pass

    def fake_fit(*args: object, **kwargs: object) -> None:
        seen.append(torch.get_num_threads())
        raise Stop

    monkeypatch.setattr(trainer, "fit", fake_fit)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as on a 2-core laptop
    try:
        with pytest.raises(Stop):
            demo(tmp_path, Phases(out=io.StringIO()), train_minutes=0.2, progress=False)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class _Ticks:
    """A clock that advances by the given steps, one per call: phases get exact wall and CPU figures."""

    def __init__(self, steps: list[float]) -> None:
        self.now, self.steps = 0.0, iter(steps)

    def __call__(self) -> float:
        self.now += next(self.steps, 0.0)
        return self.now


def _timed(wall: dict[str, float], cpu: dict[str, float]) -> Phases:
    """Phases that took `wall` seconds and `cpu` CPU seconds each (the clocks are read at start and end)."""
    ph = Phases(
        out=io.StringIO(),
        clock=_Ticks([x for w in wall.values() for x in (1.0, w)]),
        cpu_clock=_Ticks([x for c in cpu.values() for x in (1.0, c)]),
    )
    for name in wall:
        with ph.phase(name, name):
            pass
    return ph


_REPORT = {"received": 2000, "produced": 2000, "missing": 0, "delivered_all": True}


def test_closing_gives_cpu_per_phase_and_names_a_busy_machine(tmp_path: Path) -> None:
    """Under load the demo's wall time measures the other programs: the CPU figures say what the demo cost."""
    wall = {"data": 15.0, "train": 127.0, "export": 143.0, "verify": 1.0, "fleet": 100.0}
    cpu = {"data": 1.0, "train": 9.0, "export": 10.0, "verify": 0.1, "fleet": 7.0}
    busy = closing(_timed(wall, cpu), _REPORT, 386.0, tmp_path)
    assert "CPU 27 s (data 1.0 s, train 9.0 s, export 10.0 s, verify 0.1 s, fleet 7.0 s)" in busy
    # 20.1 s of CPU in 286 s of wall outside the real-time fleet
    assert "a busy machine: data, train, export, verify got 7% of a core (20 s of CPU in 286 s)" in busy
    # an idle machine: the computing phases ran on a full core (the fleet waits on its real-time clock)
    wall = {"data": 1.0, "train": 16.0, "export": 10.0, "verify": 0.2, "fleet": 24.0}
    cpu = {"data": 0.8, "train": 15.0, "export": 9.5, "verify": 0.1, "fleet": 4.0}
    idle = closing(_timed(wall, cpu), _REPORT, 51.0, tmp_path)
    assert "CPU 29 s (data 0.8 s, train 15.0 s, export 9.5 s, verify 0.1 s, fleet 4.0 s)" in idle
    assert "busy" not in idle


def test_demo_fleet_runs_20_seconds_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Every second of the real-time fleet costs CPU; 20 s shows the same live view (was 30 s)."""
    import inspect

    from edgernn.cli import main

    assert inspect.signature(demo).parameters["duration"].default == 20.0
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = capsys.readouterr().out
    assert "seconds the live fleet runs (default: 20)" in help_text
    assert "4 devices for 20 s" in help_text


def test_the_demo_command_ends_without_interpreter_teardown(monkeypatch: pytest.MonkeyPatch) -> None:
    """`edgernn demo` flushes its output and ends the process with run's code (no module-by-module teardown)."""
    import argparse

    from edgernn import demo as demo_module

    events: list[object] = []

    class Out(io.StringIO):
        def flush(self) -> None:
            events.append(("flush", self.getvalue()))

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        events.append(("exit", code))
        raise Exited

    monkeypatch.setattr(demo_module, "run", lambda ns: print("closing lines") or 1)
    monkeypatch.setattr("sys.stdout", Out())
    monkeypatch.setattr(demo_module.os, "_exit", fake_exit)
    with pytest.raises(Exited):
        demo_module.run_and_exit(argparse.Namespace())
    assert events[0] == ("flush", "closing lines\n") and events[-1] == ("exit", 1)
