"""Strategy registry: the built-in strategies plus any registered under the `mtlsearch.strategies` entry point."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import UserError, choice_error
from .base import EpochContext, Strategy
from .cross_stitch import CrossStitch
from .hard_sharing import HardSharing
from .setting import Setting
from .single_task import SingleTask
from .structured import StructuredStrategy

BUILTIN: dict[str, type[Strategy] | str] = {cls.name: cls for cls in (SingleTask, HardSharing, CrossStitch)}
BUILTIN.update({  # imported on first use: these modules pull in their own libraries
    "task_routing": "mtlsearch.strategies.task_routing:TaskRouting",
    "sfg": "mtlsearch.strategies.sfg:StochasticFilterGroups",
    "selective_sharing": "mtlsearch.strategies.selective_sharing:SelectiveSharing",
    "task_affinity": "mtlsearch.strategies.task_affinity:TaskAffinity",
})
BASELINES = ("single_task", "hard_sharing", "cross_stitch")
REGISTERED: dict[str, type[Strategy]] = {}  # what `register_strategy` added in this process


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Make a Strategy subclass available by its `name` in this process; usable as a class decorator.

    Train, Trainer and exports find it in this process; a package you install registers under the
    `mtlsearch.strategies` entry point instead, so every process (Ray Tune's workers too) finds it.

    Args:
        cls: a subclass of Strategy with a `name` that no built-in strategy has.

    Example:
        >>> @register_strategy
        ... class MyStrategy(StructuredStrategy):
        ...     name = "my_strategy"
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
        raise UserError(f"register_strategy takes a Strategy subclass with a `name`, got {cls!r}")
    if cls.name in BUILTIN:
        raise UserError(f"strategy name {cls.name!r} is built in; valid: a name other than {', '.join(BUILTIN)}")
    REGISTERED[cls.name] = cls
    return cls


def available() -> dict[str, type[Strategy]]:
    """Every strategy by name; registered ones and entry points may add strategies but not replace built-in ones.

    Example:
        >>> sorted(available())[:3]
        ['cross_stitch', 'hard_sharing', 'selective_sharing']
    """
    found = {**BUILTIN, **REGISTERED}
    for ep in entry_points(group="mtlsearch.strategies"):
        found.setdefault(ep.name, ep)
    return found


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class called `name`; an unknown name is a UserError listing the available ones.

    Args:
        name: a built-in strategy (`mtlsearch strategies` lists them), a registered one or an entry point's.

    Example:
        >>> strategy = get_strategy("task_routing")(problem, {"sigma": 0.5}, seed=0)
    """
    cls = BUILTIN.get(name) or REGISTERED.get(name)  # no scan of the installed packages' entry points for these
    if cls is None:
        found = available()
        if name not in found:
            raise choice_error("strategy", name, found)
        cls = found[name]
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        return getattr(importlib.import_module(module), attr)
    return cls if isinstance(cls, type) else cls.load()


__all__ = ["Strategy", "StructuredStrategy", "EpochContext", "Setting", "available", "get_strategy",
           "register_strategy", "BASELINES"]
