"""Parameters in a data-set spec: `multimnist:pairs=20000`, `synthetic:own=1.2,seed=3`.

A built-in loader's keyword arguments are its parameters; their defaults give their types.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

from ..errors import UserError

TYPE_WORDS = {int: "a whole number", float: "a number", str: "a name"}


def parameters(loader: Callable) -> dict[str, object]:
    """A loader's parameters and their defaults, in signature order."""
    return {name: p.default for name, p in inspect.signature(loader).parameters.items()
            if p.default is not inspect.Parameter.empty}


def describe(loader: Callable) -> str:
    """The parameters as a spec takes them, e.g. 'pairs=10000,seed=0' (empty when there are none)."""
    return ",".join(f"{name}={default}" for name, default in parameters(loader).items())


def _value(text: str, default, key: str, where: str):
    """`text` as the type of the parameter's default."""
    kind = type(default)
    try:
        value = kind(text) if kind is not int else int(text, 10)
    except ValueError:
        value = None
    if value is None or (kind is float and not math.isfinite(value)):
        raise UserError(f"{where}: parameter {key} takes {TYPE_WORDS.get(kind, kind.__name__)}, got {text!r}")
    return value


def parse(text: str, loader: Callable, where: str) -> dict[str, object]:
    """`key=value,key=value` as the loader's keyword arguments; an unknown key names the valid ones."""
    valid = parameters(loader)
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise UserError(f"{where}: parameters are key=value separated by commas, got {item!r}")
        if key not in valid:
            raise UserError(f"{where}: no parameter {key!r}; valid: {', '.join(valid) or 'none'}")
        values[key] = _value(value, valid[key], key, where)
    return values


def load_with_parameters(loader: Callable, spec: str) -> object:
    """Call `loader` with the parameters after the ':' of `spec` (none when there is no ':')."""
    return loader(**parse(spec.partition(":")[2], loader, f"dataset {spec!r}"))
