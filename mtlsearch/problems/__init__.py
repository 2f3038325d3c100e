"""Multi-task problems: tasks, metrics and the dataset registry (`load_problem`)."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import UserError, choice_error
from . import builtin
from .tasks import PRIMARY_METRIC, TASK_TYPES, Problem, Task, score
from .torchvision_sets import TORCHVISION_DATASETS
from .user import load_npz, problem_from_dataset

BUILTIN_DATASETS = {
    "digits": (builtin.digits, "scikit-learn's 8x8 digits as 10 one-vs-all binary tasks"),
    "multidigits": (builtin.multidigits, "two digits side by side: 2 multiclass, 3 binary, 1 regression task"),
    "synthetic": (builtin.synthetic, "regression tasks in 4 planted groups (true grouping stored)"),
}


def dataset_names() -> list[str]:
    plugins = [ep.name for ep in entry_points(group="mtlsearch.datasets")]
    return sorted(set(BUILTIN_DATASETS) | set(TORCHVISION_DATASETS) | set(plugins))


def _from_object(obj, name: str) -> Problem:
    obj = obj() if callable(obj) and not hasattr(obj, "__getitem__") else obj
    if isinstance(obj, Problem):
        return obj
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return problem_from_dataset(obj, name=name)
    raise UserError(f"dataset {name!r} gave a {type(obj).__name__}; expected a Problem or a torch Dataset")


def load_problem(spec: str, data_root: str | None = None, download: bool = False) -> Problem:
    """A problem by registry name, `.npz` path, `module:attribute`, or `mtlsearch.datasets` entry point."""
    if spec.endswith(".npz"):
        return load_npz(spec)
    if spec in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[spec][0]()
    if spec in TORCHVISION_DATASETS:
        if data_root is None:
            raise UserError(f"dataset {spec!r} is read from disk: pass `data_root`, its directory (and `download` "
                            "to fetch it there)", ("data_root", "download"))
        return TORCHVISION_DATASETS[spec][0](data_root, download=download)
    plugins = {ep.name: ep for ep in entry_points(group="mtlsearch.datasets")}
    if spec in plugins:
        return _from_object(plugins[spec].load(), spec)
    if ":" in spec and not Path(spec).exists():
        module, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise UserError(f"cannot load dataset {spec!r}: {err}") from None
        return _from_object(obj, attr)
    raise choice_error("dataset", spec, dataset_names() + ["FILE.npz", "module:attribute"])


__all__ = ["PRIMARY_METRIC", "TASK_TYPES", "Problem", "Task", "score", "load_problem", "load_npz",
           "problem_from_dataset", "dataset_names", "BUILTIN_DATASETS", "TORCHVISION_DATASETS"]
