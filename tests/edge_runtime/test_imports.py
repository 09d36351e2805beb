"""`import edge_runtime` (and `edgernn run`'s module) load NumPy, orjson (the wire format's encoder, optional)
and the standard library only."""

from __future__ import annotations

import ast
import subprocess
import sys

CODE = """
import sys, sysconfig
import edge_runtime, edge_runtime.cli.run, edge_runtime.device.sources, edge_runtime.device.settings
import edge_runtime.bundle.loader
site = sysconfig.get_paths()["purelib"]
third = sorted({
    name.split(".")[0]
    for name, mod in list(sys.modules.items())
    if (getattr(mod, "__file__", None) or "").startswith(site) and not name.startswith("_")
})  # (underscored: the editable-install and setuptools import hooks, not imports of ours)
print(third)
"""


def test_runtime_imports_numpy_and_the_standard_library_only():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out.strip()))
    assert "numpy" in loaded and loaded <= {"numpy", "orjson"}, loaded
