"""scripts/mutate.py stays in step with the code: every planted bug still finds its one snippet, and every
test it runs still exists (8 of its 18 went stale unnoticed when the code they targeted moved)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _mutate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


MUTATIONS = _mutate().MUTATIONS


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_each_mutation_finds_its_snippet_once_and_its_tests(m: Any) -> None:
    text = (ROOT / m.path).read_text()
    found = text.count(m.old)
    assert found == 1, f"{m.name}: snippet found {found} times in {m.path}; update scripts/mutate.py"
    assert m.old != m.new
    for arg in m.tests:
        if arg.startswith("tests/"):
            assert (ROOT / arg.split("::")[0]).is_file(), f"{m.name}: no test file {arg}"


def test_there_are_mutations() -> None:
    assert len(MUTATIONS) >= 18
