"""How big the reproduction is: seeds, sigmas, epochs per strategy and dataset, task counts, cost budgets.

`Plan.full()` is what docs/RESULTS.md is generated with; `Plan.quick()` is the smoke check. Every number the
report shows comes from runs this plan defines; nothing is tuned per seed or per result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError

STRATEGIES = ("single_task", "hard_sharing", "cross_stitch", "task_routing", "sfg", "selective_sharing")
COMPARED_DATASETS = ("digits", "multidigits")
TR_SIGMA_FOR_COMPARISON = 0.4  # the paper's best sigma on UCSD-Birds, fixed before any run here

# Epochs per dataset and strategy in the full run: enough for each strategy's validation score to level off
# (checked on seed 0). Task Routing trains one task per batch (Algorithm 1), so it gets T times the baselines'
# epochs (10 x 10 on digits, 6 x 15 on multidigits): the same expected number of updates per task.
FULL_EPOCHS = {
    "digits": {"single_task": 10, "hard_sharing": 10, "cross_stitch": 10, "task_routing": 100, "sfg": 20,
               "selective_sharing": 15},
    "multidigits": {"single_task": 15, "hard_sharing": 15, "cross_stitch": 15, "task_routing": 90, "sfg": 20,
                    "selective_sharing": 15},
    "synthetic": {"selective_sharing": 10},
}


def _scaled(epochs: dict, cap: int) -> dict:
    return {ds: {s: min(e, cap) for s, e in per.items()} for ds, per in epochs.items()}


def all_criteria() -> tuple[str, ...]:
    """Every Selective Sharing criterion, in the strategy's order (imported when a plan is made, not at --help)."""
    from ..strategies.selective_sharing.criteria import CRITERIA

    return tuple(CRITERIA)


@dataclass(frozen=True)
class Plan:
    """The sizes of every experiment (see the module docstring)."""

    name: str
    seeds: tuple[int, ...] = (0, 1, 2)
    sigmas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    epochs: dict = field(default_factory=lambda: FULL_EPOCHS)
    task_counts: tuple[int, ...] = (10, 50, 100, 312)
    cost_methods: tuple[str, ...] = ("task_routing", "cross_stitch")
    cost_steps: int = 20  # timed training steps per measurement (after `cost_warmup`)
    cost_warmup: int = 3
    cost_batch: int = 64
    cost_budget_seconds: float = 150.0  # one cost measurement (build + steps) must fit in this
    cost_budget_bytes: float = 8e9  # peak memory growth (or parameters + gradients + Adam) must fit in this
    criteria: tuple[str, ...] = field(default_factory=all_criteria)
    datasets: tuple[str, ...] = COMPARED_DATASETS
    strategies: tuple[str, ...] = STRATEGIES

    def __post_init__(self):
        if not self.seeds:
            raise UserError("the reproduction needs at least one seed")
        for dataset in (*self.datasets, "synthetic"):
            missing = [s for s in self.needed(dataset) if s not in self.epochs.get(dataset, {})]
            if missing:
                raise UserError(f"plan {self.name!r} gives no epochs for {', '.join(missing)} on {dataset}")

    def needed(self, dataset: str) -> list[str]:
        return ["selective_sharing"] if dataset == "synthetic" else list(self.strategies)

    def epochs_for(self, dataset: str, strategy: str) -> int:
        return int(self.epochs[dataset][strategy])

    @classmethod
    def full(cls, seeds: int = 3) -> "Plan":
        return cls("full", seeds=_seeds(seeds))

    @classmethod
    def quick(cls, seeds: int = 1) -> "Plan":
        """A smoke check: one seed, three sigmas, a few epochs, two task counts, small cost budgets."""
        return cls("quick", seeds=_seeds(seeds), sigmas=(0.0, 0.4, 1.0), epochs=_scaled(FULL_EPOCHS, 3),
                   task_counts=(10, 50), cost_steps=8, cost_warmup=2, cost_budget_seconds=30.0,
                   cost_budget_bytes=2e9)

    def describe(self) -> dict:
        """What RESULTS.md lists under 'how this was run'."""
        return {"plan": self.name, "seeds": list(self.seeds), "sigmas": list(self.sigmas), "epochs": self.epochs,
                "task counts": list(self.task_counts), "timed steps per cost measurement": self.cost_steps,
                "cost budget (s)": self.cost_budget_seconds, "cost budget (GB)": self.cost_budget_bytes / 1e9}


def _seeds(n: int) -> tuple[int, ...]:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UserError(f"seeds must be a whole number of at least 1, got {n!r}")
    return tuple(range(n))
