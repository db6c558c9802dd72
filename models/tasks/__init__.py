"""The task zoo: each task is data + model shape + loss + metric."""

from __future__ import annotations

import os
from typing import Any

from models.errors import ConfigError, DataError, RnnCompressError, param_error
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
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"The 'task' parameter must be one of {sorted(TASKS)}. Got {name!r} instead.")
    if params is not None and not isinstance(params, dict):
        raise param_error("params", "a dict of the task's parameters", type(params).__name__)
    return TASKS[name].from_dict(dict(params or {}))


def task_from_checkpoint(task_dict: dict[str, Any], data: str | os.PathLike | None = None) -> Task:
    """The task a checkpoint records; ``data`` replaces its stored data location."""
    if not task_dict or "name" not in task_dict:
        raise ConfigError("The model records no task (saved without one, or edited), so it has no data to load.")
    try:
        task = make_task(task_dict["name"], task_dict.get("params", {}))
    except ConfigError as e:  # (its own settings, not the user's: say whose they are)
        raise ConfigError(f"The model records a task this rnncompress cannot make (a damaged or edited file, "
                          f"or a newer version's): {str(e).rstrip('.')}.") from None
    return task if data is None else task.with_data(data)


def check_task_is(task: Task, recorded: dict[str, Any], recorded_data: Any, whose: str, hint: str) -> None:
    """ConfigError unless ``task`` is the task ``whose`` records (``recorded``; its data
    location aside), DataError unless its files are the ones it recorded (``recorded_data``,
    its ``data_sha256``): a metric on other data is not that model's, and training on it is
    another run."""
    theirs, mine = (task_from_checkpoint(recorded).identity() if recorded else None), task.identity()
    if theirs is not None and mine != theirs:  # (one that records no task is the caller's word)
        what = (f"task {theirs[0]!r}, not {mine[0]!r}" if mine[0] != theirs[0]
                else f"parameters {theirs[1]}, not {mine[1]}")
        raise ConfigError(f"{whose[:1].upper()}{whose[1:]} was trained on another task ({what}); {hint}.")
    task.check_data_is(recorded_data, whose, hint)


def task_files(task_dict: Any, data: str | os.PathLike | None = None) -> list[str]:
    """The data files the task a checkpoint records reads (from ``data`` if given): inputs
    of every command that scores or trains it, which no output may replace. [] when it
    records no usable task."""
    try:
        return task_from_checkpoint(task_dict, data).guarded_files()
    except RnnCompressError:
        return []


def interface_of(task_dict: Any, recorded: Any = None, data: str | os.PathLike | None = None) -> dict[str, Any]:
    """``Task.interface`` of the task a checkpoint or an ONNX file records (its files read from
    ``data`` if given). A table built from the data (charlm's vocabulary) is given only from
    the files the model recorded (``recorded``: its ``data_sha256``): another text is another
    vocabulary. When it cannot be built, ``{"unavailable": why}``."""
    try:
        if not isinstance(task_dict, dict):
            raise ConfigError("no task is recorded")
        task = task_from_checkpoint(task_dict, data)
        if task.interface_reads_data:
            task.check_data_is(recorded, "the model")
        return task.interface()
    except RnnCompressError as e:
        return {"unavailable": str(e)}


def recorded_test_split(task_dict: dict[str, Any], what: str, hint: str,
                        data: str | os.PathLike | None = None) -> tuple[Task, Split]:
    """The task a model records (its files read from ``data`` if given) and its test split,
    for the commands that score a stored model (export's verification, bench's metric).

    Raises:
        DataError: "Cannot load {what}: {reason}; {hint}." when the task cannot be rebuilt or
            its data cannot be loaded.
        ConfigError: ``data`` given for a task that generates its data.
    """
    def cannot_load(e: RnnCompressError) -> DataError:
        return DataError(f"Cannot load {what}: {str(e).rstrip('.')}; {hint}.")

    try:
        task = task_from_checkpoint(task_dict)
    except RnnCompressError as e:
        raise cannot_load(e) from None
    if data is not None:
        task = task.with_data(data)  # its own error: --data does not apply to a generated task
    try:
        return task, task.load().test
    except RnnCompressError as e:
        raise cannot_load(e) from None


__all__ = ["TASKS", "make_task", "task_from_checkpoint", "check_task_is", "recorded_test_split", "Task", "TaskData", "Split", "ModelSpec", "evaluate",
           "check_task_data", "check_data_fits"]
