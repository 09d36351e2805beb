"""Each task lives in its rooms: the runtime's head (edge_runtime.stream.heads), the trainer's task
(trainer.tasks) and the simulator's (firmware_sim.tasks). Code elsewhere asks the task object; it never
compares a task's name (read from the source with ast, nothing is run), so a new task is new modules and
registry lines, not edits spread over the packages."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from edge_runtime.stream.heads import HEADS
from edgernn.config import TASKS
from firmware_sim.tasks import SIM_TASKS
from trainer.tasks import TASKS as TRAINER_TASKS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgernn", "trainer", "exporter", "edge_runtime", "firmware_sim")
ROOMS = ("trainer/tasks/", "firmware_sim/tasks/", "edge_runtime/stream/heads/")
# where a name is still compared, and why (each one a file a new task may touch)
KNOWN = {
    "edgernn/config.py": "the names a ModelConfig accepts; a token task needs a vocabulary",
    "edge_runtime/bundle/manifest.py": "the bundle's own check of a forecast's outputs (heads import the manifest)",
    "edge_runtime/publish/discovery.py": "Home Assistant entities per task",
}


def _names(node: ast.AST) -> set[str]:
    """The task names a constant, or a tuple / list / set of constants, spells."""
    if isinstance(node, ast.Constant) and node.value in TASKS:
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in TASKS}
    return set()


def _is_task(node: ast.AST) -> bool:
    """`task`, `x.task`, `x["task"]`: an expression that holds a task's name."""
    if isinstance(node, ast.Name):
        return node.id == "task"
    if isinstance(node, ast.Attribute):
        return node.attr == "task"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "task"
    return False


def branches(source: str) -> list[int]:
    """Lines that branch on a task's name: `task == "forecast"`, `out.task in ("classify", ...)`, and
    tables keyed by task names (`{"classify": ..., "forecast": ...}[task]`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_task(s) for s in sides) and any(_names(s) for s in sides):
                found.append(node.lineno)
        elif isinstance(node, ast.Dict):
            keys = set().union(*(_names(k) for k in node.keys if k is not None)) if node.keys else set()
            if len(keys) >= 2:
                found.append(node.lineno)
    return sorted(found)


def test_the_branch_finder_finds_branches() -> None:
    code = (
        'if task == "classify": pass\n'
        'if prep.task in ("forecast", "anomaly"): pass\n'
        'io = {"classify": 1, "generate": 2}[cfg.task]\n'
        'ok = kw["task"] != "forecast"\n'
        'key = "anomaly" if kind == "anomaly" else "label"\n'  # a truth kind, not a task: not a branch
        'out = {"anomaly": score}\n'  # a field named like a task: not a branch
    )
    assert branches(code) == [1, 2, 3, 4]


def test_no_code_outside_the_task_rooms_branches_on_a_task_name() -> None:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ROOMS) or rel in KNOWN:
                continue
            lines = branches(path.read_text(encoding="utf-8"))
            if lines:
                found[rel] = lines
    assert found == {}, "ask the task object (trainer.tasks, firmware_sim.tasks, the heads) instead"


def test_the_known_exceptions_still_branch() -> None:
    """An exception that no longer compares a name comes off the list."""
    for rel in KNOWN:
        assert branches((ROOT / rel).read_text(encoding="utf-8")), rel


def test_every_package_has_a_room_for_every_task() -> None:
    schema = json.loads((ROOT / "edge_runtime/bundle/manifest.schema.json").read_text(encoding="utf-8"))
    props = [d["properties"] for d in _walk(schema) if isinstance(d, dict) and isinstance(d.get("properties"), dict)]
    tasks = [p["task"] for p in props if "task" in p]
    assert tasks and all(t["enum"] == list(TASKS) for t in tasks)  # the model's and the output's
    assert list(TRAINER_TASKS) == list(TASKS)
    assert list(SIM_TASKS) == list(TASKS)
    assert set(HEADS) == set(TASKS)


def _walk(node: object) -> list[object]:
    out = [node]
    if isinstance(node, dict):
        for v in node.values():
            out += _walk(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk(v)
    return out
