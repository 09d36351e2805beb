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
