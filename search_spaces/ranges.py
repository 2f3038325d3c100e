"""What a space searches, declared once: each setting's range, drawn define-by-run with an Optuna trial
(`draw`) or turned into Ray Tune domains (`domains`, read by `mtlsearch.tune.param_space`).

A Ray Tune space is flat and unconditional, so a range that draws several values (`OnePerLayer`) is laid out
there as all of its draws, and `settle` turns the drawn values back into the setting.
"""
from __future__ import annotations

from dataclasses import dataclass


class Range:
    """One setting's range: a single draw of the setting's own name unless a subclass says otherwise."""

    def draws(self, name: str) -> dict:
        """The flat draws of this range in a Ray Tune space, by name."""
        return {name: self}

    def settle(self, name: str, drawn: dict) -> None:
        """Turn this range's flat draws in `drawn` into the setting's value (a single draw already is one)."""


@dataclass(frozen=True)
class Float(Range):
    """A real number in [low, high], log-uniform when `log`."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def domain(self):
        from ray import tune

        return tune.loguniform(self.low, self.high) if self.log else tune.uniform(self.low, self.high)


@dataclass(frozen=True)
class Int(Range):
    """An integer in [low, high], both included."""

    low: int
    high: int

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high)

    def domain(self):
        from ray import tune

        return tune.randint(self.low, self.high + 1)  # Ray's upper bound is excluded


@dataclass(frozen=True)
class Choice(Range):
    """One of `options`."""

    options: tuple

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, self.options)

    def domain(self):
        from ray import tune

        return tune.choice(list(self.options))


@dataclass(frozen=True)
class OnePerLayer(Range):
    """One value for every layer, or (when `switch` is drawn true) a list of one per layer, named `NAME_i`."""

    each: Float
    layers: int
    switch: str

    def suggest(self, trial, name: str):
        if trial.suggest_categorical(self.switch, (False, True)):
            return [self.each.suggest(trial, f"{name}_{i}") for i in range(self.layers)]
        return self.each.suggest(trial, name)

    def draws(self, name: str) -> dict:
        return {self.switch: Choice((False, True)), name: self.each,
                **{f"{name}_{i}": self.each for i in range(self.layers)}}

    def settle(self, name: str, drawn: dict) -> None:
        """The per-layer draws become the list when the switch was drawn true; the switch itself is no setting."""
        if self.switch not in drawn:
            return
        per_layer = drawn.pop(self.switch)
        layers = [drawn.pop(f"{name}_{i}", None) for i in range(self.layers)]
        if per_layer:
            drawn[name] = layers


def draw(trial, ranges: dict) -> dict:
    """Every range drawn with an Optuna trial (define-by-run), in declaration order."""
    return {name: spec.suggest(trial, name) for name, spec in ranges.items()}


def domains(ranges: dict) -> dict:
    """The ranges as a flat Ray Tune param_space (tune.uniform, tune.choice, ...)."""
    return {key: simple.domain() for name, spec in ranges.items() for key, simple in spec.draws(name).items()}


def draw_names(ranges: dict) -> set[str]:
    """The names a Ray Tune space of these ranges draws that are not settings (e.g. `sigma_per_layer`)."""
    return {key for name, spec in ranges.items() for key in spec.draws(name)} - set(ranges)


def settle(ranges: dict, drawn: dict) -> dict:
    """A flat Ray Tune draw as settings: the draws of a several-valued range become its setting's value."""
    drawn = dict(drawn)
    for name, spec in ranges.items():
        spec.settle(name, drawn)
    return drawn
