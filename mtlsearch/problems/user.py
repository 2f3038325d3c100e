"""A user's own data: an .npz file of arrays, or any torch Dataset yielding (x, y)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from ..errors import UserError, user_code
from .data import check_splittable, seeded_split, tensor_dataset
from .tasks import TASK_TYPES, Problem, Task

SPLIT_SEED = 0
SPLIT_ARRAYS = ("x_val", "y_val", "x_test", "y_test")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what numpy.load takes for an .npz: a zip, or an empty one


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
            raise UserError(f"{where}: multiclass task {task.name!r} needs integer labels "
                            f"in [0, {task.num_classes - 1}]")


def _tasks_from_arrays(data, y: np.ndarray, where: str) -> list[Task]:
    if y.shape[1] == 0:
        raise UserError(f"{where}: 'y' has no columns, so there are no tasks; 'y' [N, T] needs one column per task")
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


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file; anything else, and arrays of Python objects (pickles), are refused."""
    with open(path, "rb") as f:
        if f.read(4) not in ZIP_MAGIC:
            raise UserError(f"{where}: not a readable .npz file (it is not a zip of .npy arrays, which numpy.savez "
                            "writes)")
    arrays, key = {}, None
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                arrays[key] = data[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise UserError(f"{where}: array {key!r} holds Python objects, which are not loaded (unpickling can run "
                            "code); store numbers, and plain strings for task_names and task_types") from None
        raise UserError(f"{where}: not a readable .npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{where}: not a readable .npz file ({err})") from None
    return arrays


def _given_split(data, split: str, x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """x_<split>, y_<split> checked against the training arrays: same example shape, one column per task."""
    px, py = _xy(data, f"x_{split}", f"y_{split}", where)
    if px.shape[1:] != x.shape[1:]:
        raise UserError(f"{where}: 'x_{split}' has examples of shape {list(px.shape[1:])} but 'x' has "
                        f"{list(x.shape[1:])}; they must match")
    if py.shape[1] != y.shape[1]:
        raise UserError(f"{where}: 'y_{split}' has {py.shape[1]} label columns but 'y' has {y.shape[1]}; every "
                        "split needs one column per task")
    return px, py


def _given_splits(data, x: np.ndarray, y: np.ndarray, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The validation and test arrays when the file has them: all of x_val, y_val, x_test, y_test, or none (then
    [] and a seeded 80/10/10 split of x and y is made)."""
    given = [k for k in SPLIT_ARRAYS if k in data]
    if given and len(given) < len(SPLIT_ARRAYS):
        missing = [k for k in SPLIT_ARRAYS if k not in data]
        raise UserError(f"{where} has {', '.join(given)} but no {', '.join(missing)}: give all of x_val, y_val, "
                        "x_test and y_test, or none of them for a seeded 80/10/10 split of 'x' and 'y'")
    return [_given_split(data, split, x, y, where) for split in ("val", "test")] if given else []


def load_npz(path: str | Path) -> Problem:
    """Load and validate x, y (and optional names, types and val/test arrays) before any training."""
    path = Path(path)
    where = path.name
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = _read_npz(path, where)
    x, y = _xy(data, "x", "y", where)
    given = _given_splits(data, x, y, where)
    parts = [(x, y), *given]
    for key, (px, _) in zip(("x", "x_val", "x_test"), parts):
        if len(px) == 0:
            raise UserError(f"{where}: {key!r} has no rows; the train, validation and test splits each need at least "
                            "one")
    tasks = _tasks_from_arrays(data, y, where)
    labels = np.concatenate([py for _, py in parts])
    for i, task in enumerate(tasks):
        check_labels(task, labels[:, i], where)
    if not given:
        check_splittable(len(x), f"{where}: 'x'", otherwise=" (or give x_val, y_val, x_test and y_test)")
        parts = [(x[i], y[i]) for i in seeded_split(len(x), SPLIT_SEED)]
    return Problem(path.stem, tasks, *(tensor_dataset(px, py) for px, py in parts), input_shape=tuple(x.shape[1:]))


def _item(dataset, index: int, where: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Item `index` of a user's dataset as (x's shape, y as a row of floats); refuses anything but a pair (x, y)."""
    with user_code(f"{where}: reading item {index} (dataset[{index}])"):
        item = dataset[index]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        kind = f"a {len(item)}-{type(item).__name__}" if isinstance(item, (tuple, list)) else f"a {type(item).__name__}"
        raise UserError(f"{where}: item {index} is {kind}; each item must be a pair (x, y), y holding one label per "
                        "task")
    x, y = item
    try:
        shape = tuple(torch.as_tensor(x).shape)
        row = np.asarray(y, dtype=np.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"{where}: item {index} is not a pair of numeric arrays or tensors ({err})") from None
    if row.ndim > 1:
        raise UserError(f"{where}: item {index}'s y has shape {list(row.shape)}; it must be [T], one label per task")
    return shape, np.atleast_1d(row)


def _labels(dataset, where: str) -> tuple[tuple[int, ...], np.ndarray]:
    """The shape of x (the same for every item) and the labels [N, T] of a user's dataset, read item by item."""
    with user_code(f"{where}: len(dataset)"):
        n = len(dataset)
    check_splittable(n, where)
    shape, rows = None, []
    for index in range(n):
        x_shape, row = _item(dataset, index, where)
        shape = x_shape if shape is None else shape
        if x_shape != shape:
            raise UserError(f"{where}: item {index}'s x has shape {list(x_shape)} but item 0's has {list(shape)}; "
                            "every x must have the same shape")
        if rows and len(row) != len(rows[0]):
            raise UserError(f"{where}: item {index}'s y has {len(row)} labels but item 0's has {len(rows[0])}; "
                            "y holds one label per task")
        rows.append(row)
    if len(rows[0]) == 0:
        raise UserError(f"{where}: y is empty, so there are no tasks; y holds one label per task")
    return shape, np.stack(rows)


def problem_from_dataset(dataset: torch.utils.data.Dataset, name: str = "dataset", tasks: list[Task] | None = None,
                         seed: int = SPLIT_SEED, where: str | None = None) -> Problem:
    """Wrap any torch Dataset yielding (x, y[T]) as a Problem with a seeded 80/10/10 split; every item is read
    once here, so a bad item is named before training (`where` names the dataset in errors)."""
    where = where or f"dataset {name!r}"
    input_shape, labels = _labels(dataset, where)
    if tasks is None:
        tasks = [infer_task(f"task_{i}", labels[:, i]) for i in range(labels.shape[1])]
    if len(tasks) != labels.shape[1]:
        raise UserError(f"{where}: {len(tasks)} tasks given for {labels.shape[1]} label columns")
    for i, task in enumerate(tasks):
        check_labels(task, labels[:, i], where)
    splits = [Subset(dataset, idx.tolist()) for idx in seeded_split(len(dataset), seed)]
    return Problem(name, list(tasks), *splits, input_shape=input_shape)
