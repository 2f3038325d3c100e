"""`--set key=value` parsing and routing of each key to the trainer or the strategy, with clear errors."""
from __future__ import annotations

import json
from dataclasses import fields

from .errors import ConfigError, UserError
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


def _coerce(key: str, value, default):
    """Give a value the type of its default where that is lossless (1 -> 1.0 for a float setting)."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def accepted_settings(strategy_cls) -> set[str]:
    """Every setting a run of this strategy takes: the trainer's and the strategy's own."""
    return {f.name for f in fields(TrainConfig)} | set(strategy_cls.defaults)


def split_settings(settings: dict, strategy_cls) -> tuple[TrainConfig, dict]:
    """(trainer config, strategy config); an unknown key names every valid one."""
    trainer_keys = {f.name: f.default for f in fields(TrainConfig)}
    strategy_keys = dict(strategy_cls.defaults)
    unknown = sorted(set(settings) - set(trainer_keys) - set(strategy_keys))
    if unknown:
        valid = sorted(set(trainer_keys) | set(strategy_keys))
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for strategy {strategy_cls.name}; "
                          f"valid: {', '.join(valid)}")
    train = {k: _coerce(k, v, trainer_keys[k]) for k, v in settings.items() if k in trainer_keys}
    strategy = {k: _coerce(k, v, strategy_keys[k]) for k, v in settings.items() if k in strategy_keys}
    config = TrainConfig(**train)
    config.validate()
    return config, strategy
