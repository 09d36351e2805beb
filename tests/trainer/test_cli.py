"""`edgernn train` end to end on a CSV, its help, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgernn.cli import main
from tests.trainer.conftest import CliRun


def test_cli_trains_the_motion_set_to_90_percent_streaming(motion_cli_run: CliRun) -> None:
    assert motion_cli_run.rc == 0
    run = motion_cli_run.run_dir
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "curve.png", "heldout.npz", "summary.json"]
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "summary.json").read_text())
    streaming = summary["metrics"]["streaming"]
    assert streaming["accuracy"] >= 0.9, streaming
    assert "one reading at a time" in streaming["how"] and "heldout.npz" in streaming["how"]
    assert summary["metrics"]["windowed"]["accuracy"] >= 0.9
    assert summary["model"]["num_layers"] == 2 and summary["model"]["hidden_size"] == 24
    assert summary["data"]["labels"] == ["idle", "run", "walk"]
    assert summary["data"]["recordings"] == 3 and summary["data"]["sample_rate"] == pytest.approx(50.0)
    # the printed summary says the same, with the streaming figure first
    out = motion_cli_run.stdout
    assert f"accuracy {streaming['accuracy']:.4g}" in out
    assert out.index("test streaming") < out.index("test windowed")
    assert f"wrote {run}" in out


def test_help_shows_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # independent of the terminal width
    for flag in (
        "--mode {windows,stateful}",
        "--drop-nan",
        "--scaler {standard,minmax}",
        "--device {auto,cpu,cuda}",
        "--seed",
        "--epochs",
        "--clip",
        "--per-step",
        "--bidirectional",
        "--horizon",
        "--false-alarm-rate",
    ):
        assert flag in text, flag
    assert "hidden units per layer (default: 64)" in text
    assert "(default: 1.0)" in text and "(default: windows)" in text
    assert "edgernn train --data readings.csv --time-column t" in text  # an example
    assert "(default: None)" not in text


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, motion_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--data", str(motion_csv), "--target", "activty", "--task", "classify", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("edgernn train: error: ")
    assert "'activty'" in err and "columns: t, device, ax" in err
    assert not out.exists()
    rc = main(["train", "--data", str(tmp_path / "missing.csv"), "--task", "classify", "--out", str(out)])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
