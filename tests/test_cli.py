"""The `edgernn` dispatcher: help teaches, and light commands never import torch."""

from __future__ import annotations

import subprocess
import sys

from edgernn.cli import COMMANDS, main


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
