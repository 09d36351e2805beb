"""`edgernn run`'s messages to a newcomer: a warning before the run, an error alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgernn.cli import main
from tests.edge_runtime.conftest import FEATURES, make_model, numpy_bundle
from tests.edge_runtime.test_select import REASON, _mark_out_of_tolerance


def test_run_warns_when_asked_for_an_artifact_out_of_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_int8 = numpy_bundle(tmp_path / "b", make_model())
    _mark_out_of_tolerance(bad_int8, "numpy-int8")
    csv = tmp_path / "r.csv"
    csv.write_text("t," + ",".join(FEATURES) + "\n1,0,1,-2,20\n2,0,1,-2,20\n")
    assert main(["run", str(bad_int8), "--source", f"csv:{csv}", "--artifact", "numpy-int8"]) == 0
    err = capsys.readouterr().err
    assert f"edgernn run: warning: numpy-int8 is out of tolerance ({REASON})" in err
    assert err.index("warning") < err.index("2 readings")  # before the run, not lost after it
    assert main(["run", str(bad_int8), "--source", f"csv:{csv}", "--artifact", "numpy-fp32"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_source_that_cannot_be_opened_is_reported_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model())
    assert main(["run", str(bundle), "--source", str(tmp_path / "imu.csv"), "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgernn run: error: unknown source"), err
    assert "readings" not in err and len(err.strip().splitlines()) == 1


def test_a_csv_lacking_feature_columns_is_refused_at_the_header_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = numpy_bundle(tmp_path / "b", make_model())
    csv = tmp_path / "imu.csv"
    csv.write_text("t,ax,az\n1,0,-2\n2,0,-2\n")  # ay and temp absent from every row
    assert main(["run", str(bundle), "--source", f"csv:{csv}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not one prediction made of imputed values
    assert "lacks the model's feature column(s) ay, temp (columns: t, ax, az)" in captured.err
    assert "--policy missing_column=allow" in captured.err and len(captured.err.strip().splitlines()) == 1
    # allowed explicitly: the per-reading `missing` policy fills them, and the summary counts it
    assert main(["run", str(bundle), "--source", f"csv:{csv}", "--policy", "missing_column=allow"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "missing 2" in captured.err
