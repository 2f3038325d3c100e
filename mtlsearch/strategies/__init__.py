"""Strategy registry: the built-in strategies plus any registered under the `mtlsearch.strategies` entry point."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import choice_error
from .base import EpochContext, Strategy
from .cross_stitch import CrossStitch
from .hard_sharing import HardSharing
from .setting import Setting
from .single_task import SingleTask

BUILTIN: dict[str, type[Strategy] | str] = {cls.name: cls for cls in (SingleTask, HardSharing, CrossStitch)}
BUILTIN.update({  # imported on first use: these modules pull in their own libraries
    "task_routing": "mtlsearch.strategies.task_routing:TaskRouting",
    "sfg": "mtlsearch.strategies.sfg:StochasticFilterGroups",
    "selective_sharing": "mtlsearch.strategies.selective_sharing:SelectiveSharing",
})
BASELINES = ("single_task", "hard_sharing", "cross_stitch")


def available() -> dict[str, type[Strategy]]:
    """Every strategy by name; entry points may add strategies but not replace built-in ones."""
    found = dict(BUILTIN)
    for ep in entry_points(group="mtlsearch.strategies"):
        found.setdefault(ep.name, ep)
    return found


def get_strategy(name: str) -> type[Strategy]:
    found = available()
    if name not in found:
        raise choice_error("strategy", name, found)
    cls = found[name]
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        return getattr(importlib.import_module(module), attr)
    return cls if isinstance(cls, type) else cls.load()


__all__ = ["Strategy", "EpochContext", "Setting", "available", "get_strategy", "BASELINES"]
