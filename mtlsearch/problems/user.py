"""A user's own data: an .npz file of arrays, or any torch Dataset yielding (x, y)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from ..errors import UserError
from .data import seeded_split, split_arrays, tensor_dataset
from .tasks import TASK_TYPES, Problem, Task

SPLIT_SEED = 0


def infer_task(name: str, column: np.ndarray) -> Task:
    """A label column's task: 0/1 values are binary, other non-negative integers multiclass, else regression."""
    values = np.unique(column)
    if np.isin(values, (0, 1)).all():
        return Task(name, "binary")
    if np.all(values == np.round(values)) and values.min() >= 0 and len(values) <= 1000:
        return Task(name, "multiclass", int(values.max()) + 1)
    return Task(name, "regression")


def check_labels(task: Task, column: np.ndarray, where: str) -> None:
    """Refuse labels that do not fit the task's type, naming the task and what is valid."""
    if not np.isfinite(column).all():
        raise UserError(f"{where}: labels of task {task.name!r} contain NaN or inf")
    if task.type == "binary" and not np.isin(column, (0, 1)).all():
        bad = np.setdiff1d(np.unique(column), (0, 1))[:5]
        raise UserError(f"{where}: binary task {task.name!r} has labels {bad.tolist()}; binary labels must be 0 or 1")
    if task.type == "multiclass":
        if not (np.all(column == np.round(column)) and column.min() >= 0 and column.max() < task.num_classes):
            raise UserError(f"{where}: multiclass task {task.name!r} needs integer labels in [0, {task.num_classes - 1}]")


def _tasks_from_arrays(data, y: np.ndarray, where: str) -> list[Task]:
    names = [str(n) for n in data["task_names"]] if "task_names" in data else [f"task_{i}" for i in range(y.shape[1])]
    if len(names) != y.shape[1]:
        raise UserError(f"{where}: {len(names)} task_names for {y.shape[1]} label columns in 'y'")
    if len(set(names)) != len(names):
        raise UserError(f"{where}: task_names must be unique")
    if "task_types" not in data:
        return [infer_task(n, y[:, i]) for i, n in enumerate(names)]
    types = [str(t) for t in data["task_types"]]
    if len(types) != len(names):
        raise UserError(f"{where}: {len(types)} task_types for {len(names)} tasks")
    tasks = []
    for i, (name, kind) in enumerate(zip(names, types)):
        if kind not in TASK_TYPES:
            raise UserError(f"{where}: task {name!r} has unknown type {kind!r}; valid: {', '.join(TASK_TYPES)}")
        classes = int(np.nanmax(y[:, i])) + 1 if kind == "multiclass" and np.isfinite(y[:, i]).all() else 2
        tasks.append(Task(name, kind, max(classes, 2)))
    return tasks


def _xy(data, x_key: str, y_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    for key in (x_key, y_key):
        if key not in data:
            raise UserError(f"{where} has no array {key!r}; it needs 'x' [N, ...] and 'y' [N, T]")
    x, y = np.asarray(data[x_key]), np.asarray(data[y_key])
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise UserError(f"{where}: {y_key!r} must have shape [N, T], got {list(y.shape)}")
    if x.ndim < 2:
        raise UserError(f"{where}: {x_key!r} must have shape [N, ...] with features, got {list(x.shape)}")
    if len(x) != len(y):
        raise UserError(f"{where}: {x_key!r} has {len(x)} rows but {y_key!r} has {len(y)}; they must match")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{where}: {x_key!r} must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise UserError(f"{where}: {x_key!r} contains NaN or inf values")
    if not np.issubdtype(y.dtype, np.number):
        raise UserError(f"{where}: {y_key!r} must be numeric, got dtype {y.dtype}")
    return x.astype(np.float32), y.astype(np.float32)


def load_npz(path: str | Path) -> Problem:
    """Load and validate x, y (and optional names, types and val/test arrays) before any training."""
    path = Path(path)
    where = path.name
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"{where}: not a readable .npz file ({err})") from None
    x, y = _xy(data, "x", "y", where)
    tasks = _tasks_from_arrays(data, y, where)
    if "x_val" in data or "x_test" in data:
        parts = [(x, y)] + [_xy(data, f"x_{s}", f"y_{s}", where) for s in ("val", "test")]
        for px, py in parts[1:]:
            if px.shape[1:] != x.shape[1:] or py.shape[1] != y.shape[1]:
                raise UserError(f"{where}: val/test arrays must have the shapes of 'x' and 'y' after the first axis")
        splits = [tensor_dataset(px, py) for px, py in parts]
        labels = np.concatenate([py for _, py in parts])
    else:
        splits, labels = split_arrays(x, y, SPLIT_SEED), y
    for i, task in enumerate(tasks):
        check_labels(task, labels[:, i], where)
    return Problem(path.stem, tasks, *splits, input_shape=tuple(x.shape[1:]))


def problem_from_dataset(dataset: torch.utils.data.Dataset, name: str = "dataset", tasks: list[Task] | None = None,
                         seed: int = SPLIT_SEED) -> Problem:
    """Wrap any torch Dataset yielding (x, y[T]) as a Problem with a seeded 80/10/10 split."""
    if len(dataset) < 3:
        raise UserError(f"dataset {name!r} has {len(dataset)} items; at least 3 are needed for train/val/test")
    x0, _ = dataset[0]
    labels = np.stack([np.atleast_1d(np.asarray(dataset[i][1], dtype=np.float32)) for i in range(len(dataset))])
    if tasks is None:
        tasks = [infer_task(f"task_{i}", labels[:, i]) for i in range(labels.shape[1])]
    if len(tasks) != labels.shape[1]:
        raise UserError(f"dataset {name!r}: {len(tasks)} tasks given for {labels.shape[1]} label columns")
    for i, task in enumerate(tasks):
        check_labels(task, labels[:, i], name)
    splits = [Subset(dataset, idx.tolist()) for idx in seeded_split(len(dataset), seed)]
    return Problem(name, list(tasks), *splits, input_shape=tuple(torch.as_tensor(x0).shape))
