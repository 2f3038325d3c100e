"""What the benches share: timing calls in turns, and Trainers whose train_step is the step being timed.

Random problems and a Stepper (Trainer.train_step on a whole random batch) come from mtlsearch.reproduce.measure,
which measures the reproduction's step costs the same way.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from mtlsearch.problems import Problem
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.base import Strategy
from mtlsearch.training import TrainConfig, Trainer


def seconds(call: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def medians_in_turns(calls: list[Callable[[], object]], rounds: int, warmup: int = 0,
                     alternate: bool = True) -> list[float]:
    """Median seconds of each call over `rounds` rounds (after `warmup` untimed ones) in which the calls take
    turns, so load that drifts slows them alike; `alternate` reverses the order every other round."""
    for _ in range(warmup):
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    for r in range(rounds):
        order = range(len(calls)) if r % 2 == 0 or not alternate else reversed(range(len(calls)))
        for i in order:
            times[i].append(seconds(calls[i]))
    return [statistics.median(t) for t in times]


def bench_trainer(problem: Problem, strategy: Strategy, backbone: str | None = None, seed: int = 0) -> Trainer:
    """A quiet Trainer on the CPU with the default settings (Adam, lr 1e-3, batch 64) for `strategy`'s model."""
    return Trainer(problem, strategy, TrainConfig(backbone=backbone), seed=seed, quiet=True, device="cpu")


def without_hooks(trainer: Trainer) -> Trainer:
    """The same trainer stepping its model with no strategy hooks (hard sharing has none): a plain step."""
    trainer.strategy = get_strategy("hard_sharing")(trainer.problem, {}, trainer.seed)
    return trainer
