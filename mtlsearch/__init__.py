"""mtlsearch: discover what a multi-task network should share between its tasks.

The public surface is `__all__`; each name is imported on first use (PEP 562), so `import mtlsearch` and
`mtlsearch --help` stay quick and import neither torch nor Ray. Everything else stays importable from its
module but is internal.

Example:
    >>> import mtlsearch
    >>> metrics = mtlsearch.train("digits", "hard_sharing", "runs/hs", epochs=2)
    >>> model = mtlsearch.load_frozen("runs/hs/frozen")
"""
import os
import sys
from importlib import import_module

if "torch" not in sys.modules:  # torch's CPU allocator reads this once, at its first allocation
    # Tensors of 2 MB and more on transparent huge pages: glibc returns each freed block over 32 MB to the OS, so a
    # large batch's activations fault their pages in again on every step, 4 KB at a time (SFG's (T+1)-fold batch on
    # VGG-11 at T=10: about 1M faults, 3-4 s of an 11 s step; about 60k on huge pages). Set it to 0 to opt out.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"

_PUBLIC = {  # public name -> (module, attribute in it; None: the module itself)
    # problems: your data as tasks with train/val/test splits
    "Problem": ("mtlsearch.problems", "Problem"),
    "Task": ("mtlsearch.problems", "Task"),
    "load_problem": ("mtlsearch.problems", "load_problem"),
    "problem_from_dataset": ("mtlsearch.problems", "problem_from_dataset"),
    # the layers strategies build on
    "Backbone": ("mtlsearch.backbones", "Backbone"),
    "LayerSpec": ("mtlsearch.backbones", "LayerSpec"),
    # strategies and their registry
    "Strategy": ("mtlsearch.strategies", "Strategy"),
    "StructuredStrategy": ("mtlsearch.strategies", "StructuredStrategy"),
    "Setting": ("mtlsearch.strategies", "Setting"),
    "available_strategies": ("mtlsearch.strategies", "available"),
    "get_strategy": ("mtlsearch.strategies", "get_strategy"),
    "register_strategy": ("mtlsearch.strategies", "register_strategy"),
    # training one strategy, retraining a discovered structure
    "Trainer": ("mtlsearch.training", "Trainer"),
    "TrainConfig": ("mtlsearch.training", "TrainConfig"),
    "train": ("mtlsearch.run", "train_run"),
    "retrain_run": ("mtlsearch.retrain", "retrain_run"),  # `mtlsearch.retrain` is its module
    # structures and frozen models
    "SharingStructure": ("mtlsearch.structure", "SharingStructure"),
    "views": ("mtlsearch.structure", "views"),
    "export_structure": ("mtlsearch.structure.export", "export_structure"),
    "freeze": ("mtlsearch.structure", "freeze"),
    "save_frozen": ("mtlsearch.structure", "save_frozen"),
    "load_frozen": ("mtlsearch.structure", "load_frozen"),
    "compare": ("mtlsearch.groupings", "compare"),  # the task groupings of runs side by side
    # Ray Tune and Optuna for your own scripts (the CLI's search is mtlsearch.search)
    "tune": ("mtlsearch.tune", None),
    "optuna": ("mtlsearch.optuna", None),
    # errors a user can cause
    "UserError": ("mtlsearch.errors", "UserError"),
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mtlsearch' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = import_module(module) if attribute is None else getattr(import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["__version__", *_PUBLIC]
