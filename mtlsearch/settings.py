"""`--set key=value` parsing and routing of each key to the trainer or the strategy, with clear errors."""
from __future__ import annotations

import json
from dataclasses import fields

from .errors import ConfigError, UserError
from .strategies.setting import Setting, dataclass_settings
from .training import TrainConfig


def parse_value(text: str):
    """JSON when it parses (numbers, lists, true/false/null), the plain string otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"none": None, "True": True, "False": False}.get(text, text)


def parse_sets(items: list[str]) -> dict:
    settings = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set takes key=value, got {item!r}")
        settings[key.strip()] = parse_value(value.strip())
    return settings


def declared_settings(strategy_cls) -> dict[str, Setting]:
    """Every setting a run of this strategy takes, by name: the trainer's, then the strategy's own."""
    return {s.name: s for s in (*dataclass_settings(TrainConfig), *strategy_cls.settings)}


def accepted_settings(strategy_cls) -> set[str]:
    """The names of every setting a run of this strategy takes."""
    return set(declared_settings(strategy_cls))


def _declared(settings: dict, strategy_cls) -> dict[str, Setting]:
    """The declarations of `settings`' keys; an unknown key names every valid one."""
    declared = declared_settings(strategy_cls)
    unknown = sorted(set(settings) - set(declared))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for strategy {strategy_cls.name}; "
                          f"valid: {', '.join(sorted(declared))}")
    return declared


def check_declared(settings: dict, strategy_cls) -> None:
    """Raise ConfigError unless every key is a declared setting and its (coerced) value one the declaration accepts.

    Needs no problem, so it checks what a search space draws against the declarations alone.
    """
    declared = _declared(settings, strategy_cls)
    for key, value in settings.items():
        declared[key].check(declared[key].coerce(value))


def split_settings(settings: dict, strategy_cls) -> tuple[TrainConfig, dict]:
    """(trainer config, strategy config) with values coerced to their settings' types; unknown keys are refused."""
    declared = _declared(settings, strategy_cls)
    trainer_keys = {f.name for f in fields(TrainConfig)}
    coerced = {k: declared[k].coerce(v) for k, v in settings.items()}
    config = TrainConfig(**{k: v for k, v in coerced.items() if k in trainer_keys})
    config.validate()
    return config, {k: v for k, v in coerced.items() if k not in trainer_keys}
