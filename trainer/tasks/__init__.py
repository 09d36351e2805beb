"""The trainer's tasks by name: a new task is a new module here and a line below (see `trainer.tasks.base`)."""

from __future__ import annotations

from edgernn.errors import ConfigError
from trainer.tasks.anomaly import AnomalyTask
from trainer.tasks.base import Task
from trainer.tasks.classify import ClassifyTask
from trainer.tasks.forecast import ForecastTask
from trainer.tasks.generate import GenerateTask

TASKS: dict[str, type[Task]] = {t.name: t for t in (ClassifyTask, ForecastTask, AnomalyTask, GenerateTask)}


def task_for(name: str) -> Task:
    """The task called `name`; ConfigError naming the supported ones otherwise."""
    if name not in TASKS:
        raise ConfigError(f"unsupported task {name!r}; supported: {', '.join(TASKS)}")
    return TASKS[name]()


__all__ = ["TASKS", "Task", "task_for"]
