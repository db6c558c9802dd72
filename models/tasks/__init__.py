"""The task zoo: each task is data + model shape + loss + metric."""

from __future__ import annotations

import os
from typing import Any

from models.errors import ConfigError
from models.tasks.adding import AddingTask
from models.tasks.base import ModelSpec, Split, Task, TaskData, check_data_fits, check_task_data, evaluate
from models.tasks.charlm import CharlmTask
from models.tasks.navigation import NavigationTask
from models.tasks.npz import NpzTask
from models.tasks.smnist import SmnistTask

TASKS: dict[str, type[Task]] = {
    t.name: t for t in (SmnistTask, NpzTask, AddingTask, NavigationTask, CharlmTask)
}


def make_task(name: str, params: dict[str, Any] | None = None) -> Task:
    """Build a task by name from a dict of parameters (CLI options or a TOML table)."""
    if name not in TASKS:
        raise ConfigError(f"The 'task' parameter must be one of {sorted(TASKS)}. Got {name!r} instead.")
    return TASKS[name].from_dict(dict(params or {}))


def task_from_checkpoint(task_dict: dict[str, Any], data: str | os.PathLike | None = None) -> Task:
    """The task a checkpoint records; ``data`` replaces its stored data location."""
    if not task_dict or "name" not in task_dict:
        raise ConfigError("The checkpoint does not record its task; pass the task explicitly.")
    task = make_task(task_dict["name"], task_dict.get("params", {}))
    return task if data is None else task.with_data(data)


__all__ = ["TASKS", "make_task", "task_from_checkpoint", "Task", "TaskData", "Split", "ModelSpec", "evaluate",
           "check_task_data", "check_data_fits"]
