"""Declared settings: one `Setting` per setting drives its validation, its coercion and the `strategies` listing.

In the spirit of scikit-learn's parameter constraints: a setting states its type, the values it accepts and its
default once, and everything that checks or shows the setting reads that declaration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigError

TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Setting:
    """A setting's name, type (bool, int, float or str), accepted values, default and one-line help.

    Numbers lie in [low, high], or (low, high] with `low_open`; `choices` lists every valid value; `per_layer`
    (e.g. "routed layer") says that a non-empty list of valid values, one per such layer, is valid too.
    A default of None is valid as well (e.g. "the problem's backbone").
    """

    name: str
    type: type
    default: Any
    help: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    choices: tuple = ()
    per_layer: str = ""

    def __post_init__(self):
        if self.type not in TYPES:
            raise TypeError(f"setting {self.name}: type must be one of bool, int, float, str, got {self.type!r}")

    def check(self, value) -> None:
        """Raise ConfigError naming the setting, what is valid and what was given."""
        if value is None and self.default is None:
            return
        if self.per_layer and isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{self.name} must be {self._kind()} in {self._interval()} or a non-empty list of "
                                  f"them (one per {self.per_layer}), got []")
            for i, item in enumerate(value):
                self._check_one(f"{self.name}[{i}]", item)
        else:
            self._check_one(self.name, value)

    def coerce(self, value):
        """The lossless conversion a command line needs: an int given for a float setting becomes a float."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def describe(self) -> str:
        """What the setting accepts, e.g. 'float in [0.0, 1.0]', 'int >= 1', 'one of sum, conv1x1'."""
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.type is bool:
            text = "true or false"
        elif self.type is str:
            text = "a name"
        elif self.high == math.inf:
            text = f"{self.type.__name__} {'>' if self.low_open else '>='} {self.low}"
        else:
            text = f"{self.type.__name__} in {self._interval()}"
        return f"{text}, or a list of them (one per {self.per_layer})" if self.per_layer else text

    def _kind(self) -> str:
        return "an integer" if self.type is int else "a number"

    def _interval(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}]"

    def _check_one(self, name: str, value) -> None:
        if self.choices:
            if value not in self.choices:
                raise ConfigError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        elif self.type is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
        elif self.type is str:
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a name, got {value!r}")
        else:
            self._check_number(name, value)

    def _check_number(self, name: str, value) -> None:
        """A number (an integer for int settings; never a bool or NaN) in the declared interval."""
        integer = self.type is int
        right_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not right_type or (isinstance(value, float) and math.isnan(value)):
            raise ConfigError(f"{name} must be {self._kind()}, got {value!r}")
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high:
            raise ConfigError(f"{name} must be in {self._interval()}, got {value!r}")


def check_settings(settings: tuple[Setting, ...], config: dict) -> None:
    """Check every declared setting's value in `config`, in the order they are declared."""
    for setting in settings:
        setting.check(config[setting.name])


def setting_field(type_: type, default, help: str, **constraints) -> Any:
    """A dataclass field declared like a Setting (its name is the field's); `dataclass_settings` reads it."""
    return field(default=default, metadata={"setting": dict(type=type_, help=help, **constraints)})


def dataclass_settings(cls) -> tuple[Setting, ...]:
    """The Settings of a dataclass whose fields are `setting_field`s, in field order."""
    return tuple(Setting(f.name, default=f.default, **f.metadata["setting"]) for f in fields(cls))
