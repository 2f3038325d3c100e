"""Finding a search space by name or file, and checking it before any trial starts."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Callable

import optuna

import search_spaces
from ..errors import UserError
from ..problems import Problem
from ..settings import accepted_settings, split_settings
from ..strategies import get_strategy

Space = Callable[[optuna.trial.BaseTrial], dict]


def space_names() -> list[str]:
    return list(search_spaces.NAMES)


def describe(name: str) -> str:
    module = importlib.import_module(f"search_spaces.{name}")
    return (module.__doc__ or "").strip().splitlines()[0]


def load_space(spec: str) -> Space:
    """A space by name (`search_spaces/NAME.py`) or a path to a Python file defining `space(trial)`."""
    if spec in search_spaces.NAMES:
        return importlib.import_module(f"search_spaces.{spec}").space
    path = Path(spec)
    if path.suffix != ".py":
        raise UserError(f"unknown space {spec!r}; valid: {', '.join(search_spaces.NAMES)} "
                        f"or a FILE.py defining space(trial)")
    if not path.is_file():
        raise UserError(f"space file {spec} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"user_space_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # a user's file: report its error in one line
        raise UserError(f"space file {spec} failed to load: {type(err).__name__}: {err}") from None
    if not callable(getattr(module, "space", None)):
        raise UserError(f"space file {spec} defines no function space(trial) -> dict")
    return module.space


class SpaceRef:
    """A space by its name or file, with fixed settings overriding sampled ones (`search --set key=value`).

    It pickles as the reference, not the function, so searcher state with a user's space file can be saved.
    """

    def __init__(self, spec: str, fixed: dict | None = None):
        self.spec, self.fixed = spec, dict(fixed or {})
        self._space: Space | None = None

    def __call__(self, trial) -> dict:
        if self._space is None:
            self._space = load_space(self.spec)
        sampled = self._space(trial)
        fixed_strategy = self.fixed.get("strategy")
        if fixed_strategy is not None and fixed_strategy != sampled.get("strategy"):
            accepted = accepted_settings(get_strategy(fixed_strategy))  # drop what was drawn for another strategy
            sampled = {k: v for k, v in sampled.items() if k in accepted}
        return {**sampled, **self.fixed}

    def __getstate__(self):
        return {"spec": self.spec, "fixed": self.fixed, "_space": None}


def first_points(space_name: str) -> list[dict]:
    """Try each discovery strategy once first, so every strategy of the `all` space gets a best trial."""
    if space_name != "all":
        return []
    return [{"strategy": s} for s in importlib.import_module("search_spaces.all").STRATEGIES]


def split_sampled(sampled: dict) -> tuple[str, dict]:
    """Split what a space sampled into (strategy name, settings for `split_settings`)."""
    if "strategy" not in sampled:
        raise UserError(f"a space must return a dict with 'strategy'; got keys {sorted(sampled)}")
    settings = dict(sampled)
    return settings.pop("strategy"), settings


def check_sampled(sampled: dict, problem: Problem) -> None:
    """Raise UserError if what a space sampled names an unknown strategy or setting or a bad value."""
    name, settings = split_sampled(sampled)
    cls = get_strategy(name)
    _, strategy_config = split_settings(settings, cls)
    cls(problem, strategy_config)


def check_space(space: Space, problem: Problem, name: str, samples: int = 8, seed: int = 0) -> None:
    """Sample the space a few times in memory and validate every config: bad spaces fail in seconds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(samples):
        trial = study.ask()
        try:
            sampled = space(trial)
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"space {name}: {err}") from None
        if not isinstance(sampled, dict):
            raise UserError(f"space {name} returned {type(sampled).__name__}; it must return a dict")
        try:
            check_sampled(sampled, problem)
        except UserError as err:
            raise UserError(f"space {name}: {err}") from None
        study.tell(trial, 0.0)
