"""Strategy registry: the built-in strategies plus any registered under the `mtlsearch.strategies` entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import choice_error
from .base import EpochContext, Strategy
from .cross_stitch import CrossStitch
from .hard_sharing import HardSharing
from .single_task import SingleTask

BUILTIN = {cls.name: cls for cls in (SingleTask, HardSharing, CrossStitch)}
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
    return cls if isinstance(cls, type) else cls.load()


__all__ = ["Strategy", "EpochContext", "available", "get_strategy", "BASELINES"]
