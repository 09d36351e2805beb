"""`edgernn run`'s messages to a newcomer: a warning before the run, an error alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def _age_checkpoint(path: Path, seconds: float) -> None:
    """As if the device had been down `seconds` since this checkpoint was written."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["saved_at"] = np.asarray(float(arrays["saved_at"]) - seconds)
    np.savez(path, **arrays)


def test_state_survives_a_restart_of_a_fast_sensor_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 10 Hz bundle: the old default (10 sample periods = 1 s) threw every checkpoint away after a restart."""
    bundle = numpy_bundle(tmp_path / "b", make_model())
    state = tmp_path / "state"
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    row = ",".join(["0", "1", "-2", "20"])
    before.write_text("t," + ",".join(FEATURES) + "\n" + "".join(f"{1000 + i * 0.1:.1f},{row}\n" for i in range(20)))
    after.write_text("t," + ",".join(FEATURES) + "\n" + "".join(f"{1032 + i * 0.1:.1f},{row}\n" for i in range(3)))
    assert main(["run", str(bundle), "--source", f"csv:{before}", "--state-dir", str(state)]) == 0
    last_before = json.loads(capsys.readouterr().out.splitlines()[-1])
    _age_checkpoint(state / "state-dev1.npz", 30.0)  # a reboot: 30 s without readings
    assert main(["run", str(bundle), "--source", f"csv:{after}", "--state-dir", str(state)]) == 0
    out, err = capsys.readouterr()
    assert "state of 1 stream(s) restored from" in err and "30 s old (restored up to 600 s" in err
    assert "state resets 0, stale state 0" in err
    first = json.loads(out.splitlines()[0])
    assert first["flags"] == [] and first["seq"] == last_before["seq"] + 1  # carried on, no reset, no gap
