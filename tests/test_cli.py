"""The `edgernn` dispatcher: help teaches, and light commands never import torch."""

from __future__ import annotations

import subprocess
import sys

from edgernn.cli import COMMANDS, main
from tests.edge_runtime.conftest import make_model, numpy_bundle


def test_top_level_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "edgernn demo" in out


def test_unknown_command_names_the_allowed_ones(capsys):
    code: int | str | None
    try:
        code = main(["frobnicate"])
    except SystemExit as exc:  # argparse's way out; a plain return must give the same code
        code = exc.code
    assert code == 2  # outside the except: a main() that returns 0 fails here
    err = capsys.readouterr().err
    assert "frobnicate" in err and "train" in err


def test_unknown_command_exits_2_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "edgernn", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "invalid choice: 'frobnicate'" in proc.stderr and "train" in proc.stderr and proc.stdout == ""


def test_help_and_runtime_import_do_not_load_torch():
    code = (
        "import sys, edge_runtime\n"
        "from edgernn.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'paho', 'ai_edge_litert', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def _without(modules: list[str], argv: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    """`edgernn ARGV` in a fresh interpreter where `modules` cannot be imported, as on a device install."""
    code = (
        "import sys\n"
        f"for m in {modules!r}:\n    sys.modules[m] = None  # import raises ModuleNotFoundError naming m\n"
        "from edgernn.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_a_command_needing_a_missing_extra_names_it_in_one_line(tmp_path):
    (tmp_path / "d.csv").write_text("t,x,y\n0,1,a\n")
    bundle = numpy_bundle(tmp_path / "bundle", make_model())
    train = ["train", "--data", "d.csv", "--target", "y", "--task", "classify", "--out", "r"]
    cases = [
        (["torch"], train, "torch", "train"),
        (["simpy"], ["simulate", "--bundle", str(bundle), "--devices", "1", "--duration", "1s"], "simpy", "sim"),
        (["paho"], ["listen", "--broker", "mqtt://127.0.0.1:1", "--count", "1"], "paho", "device"),
    ]
    for blocked, argv, module, extra in cases:
        done = _without(blocked, argv, str(tmp_path))
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith(f"edgernn {argv[0]}: error: this needs {module}")
        assert lines[0].endswith(f'pip install "edgernn[{extra}]"'), lines[0]


def test_help_marks_the_commands_that_need_an_extra(capsys):
    assert main([]) == 2
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("    ")}
    assert "[train]" in rows["train"] and "[export]" in rows["export"] and "[sim]" in rows["simulate"]
    assert "[device]" in rows["listen"] and "[" not in rows["run"] and "[" not in rows["inspect"]


def test_packaging_metadata_uses_the_current_license_form():
    """setuptools warns at every install about `license = { text = ... }` (deprecated from setuptools 77)."""
    import tomllib
    from pathlib import Path

    doc = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in doc["build-system"]["requires"]
