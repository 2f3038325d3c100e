"""How big the reproduction is: data sets, seeds, sigmas, epochs per strategy and dataset, optimisers, task
counts, cost budgets, the difficulty sweep.

`Plan.full()` is what docs/RESULTS.md is generated with; `Plan.quick()` is the smoke check. Every number the
report shows comes from runs this plan defines; nothing is tuned per seed or per result.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import UserError

STRATEGIES = ("single_task", "hard_sharing", "cross_stitch", "task_routing", "sfg", "selective_sharing",
              "task_affinity")
COMPARED_DATASETS = ("multimnist:pairs=4000", "mnist-5k")
TR_SIGMA_FOR_COMPARISON = 0.4  # the paper's best sigma on UCSD-Birds, fixed before any run here

# The papers' optimisers (SGD with momentum), used for every run of their own experiments (the Task Routing
# sweep; Selective Sharing's criteria and the hard-sharing run they are compared with). Everything else trains
# with the trainer's default, Adam at 1e-3.
PAPER_OPTIMISERS = {"task_routing": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5},
                    "selective_sharing": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.5}}

# Epochs per dataset and strategy in the full run, chosen from one measured epoch time per strategy and data set
# (runner.EPOCH_SECONDS) so that the whole reproduction fits in 45 minutes on two cores. SFG and its baselines
# get the same epochs. Selective Sharing gets more: it clusters from epoch 1 and locks after up to 3 quiet
# epochs. task_affinity (beyond the papers) measures affinity for its first AFFINITY_SWITCH_EPOCH epochs on one
# hard-sharing network and trains its chosen groups for the rest. Task Routing trains one task per batch
# (Algorithm 1), so a task gets 1/T of an epoch's updates: 16
# epochs on mnist-5k (T = 10) and 12 on multimnist (T = 6) give each task about two epochs of its own updates.
FULL_EPOCHS = {
    "multimnist:pairs=4000": {"single_task": 4, "hard_sharing": 4, "cross_stitch": 4, "task_routing": 12, "sfg": 4,
                              "selective_sharing": 6, "task_affinity": 4},
    "mnist-5k": {"single_task": 4, "hard_sharing": 4, "cross_stitch": 4, "task_routing": 16, "sfg": 4,
                 "selective_sharing": 6, "task_affinity": 4},
    "synthetic": {"selective_sharing": 10},
}
AFFINITY_SWITCH_EPOCH = 2  # task_affinity's groups are chosen at the end of this epoch (quick and full plans)
# The difficulty sweep of `synthetic` (own: a task's own function relative to its group's).
OWNS = (0.0, 0.5, 0.75, 1.0, 1.5)


def _quick_epochs(datasets: tuple[str, ...]) -> dict:
    """One epoch of everything (two for Task Routing, which trains one task per batch; task_affinity one after
    choosing its groups) on the quick data sets."""
    per = {s: 2 if s == "task_routing" else 1 for s in STRATEGIES}
    per["task_affinity"] = AFFINITY_SWITCH_EPOCH + 1
    return {**{ds: dict(per) for ds in datasets}, "synthetic": {"selective_sharing": 2}}


def all_criteria() -> tuple[str, ...]:
    """Every Selective Sharing criterion, in the strategy's order (imported when a plan is made, not at --help)."""
    from ..strategies.selective_sharing.criteria import CRITERIA

    return tuple(CRITERIA)


def machine_bytes() -> float:
    """This machine's RAM (what cross-stitch must fit in)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16e9


@dataclass(frozen=True)
class Plan:
    """The sizes of every experiment (see the module docstring)."""

    name: str
    seeds: tuple[int, ...] = (0, 1, 2)
    sigmas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 1.0)
    epochs: dict = field(default_factory=lambda: FULL_EPOCHS)
    task_counts: tuple[int, ...] = (10, 20, 50, 100, 312)
    cost_methods: tuple[str, ...] = ("task_routing", "cross_stitch")
    cost_steps: int = 20  # timed training steps per measurement (after `cost_warmup`)
    cost_warmup: int = 3
    cost_batch: int = 64
    cost_shape: tuple[int, ...] = (1, 28, 28)  # the compared data sets' input
    cost_budget_seconds: float = 150.0  # one cost measurement (build + steps) must fit in this
    cost_memory_share: float = 0.4  # a measured count must fit in this share of the RAM (two run at once)
    criteria: tuple[str, ...] = field(default_factory=all_criteria)
    datasets: tuple[str, ...] = COMPARED_DATASETS
    strategies: tuple[str, ...] = STRATEGIES
    owns: tuple[float, ...] = OWNS
    optimisers: dict = field(default_factory=lambda: PAPER_OPTIMISERS)

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
        return int(self.epochs["synthetic" if dataset.startswith("synthetic") else dataset][strategy])

    def optimiser(self, strategy: str) -> dict:
        """Trainer settings of a strategy's own experiment (empty: the trainer's default)."""
        return dict(self.optimisers.get(strategy, {}))

    @property
    def cost_budget_bytes(self) -> float:
        return self.cost_memory_share * machine_bytes()

    @classmethod
    def full(cls, seeds: int = 3) -> "Plan":
        return cls("full", seeds=_seeds(seeds))

    @classmethod
    def quick(cls, seeds: int = 1) -> "Plan":
        """A smoke check: one seed, three sigmas, one or two epochs, small data (MultiMNIST from 500 pairs, the 8x8
        digits), small task counts and cost budgets."""
        datasets = ("multimnist:pairs=300", "digits")
        return cls("quick", seeds=_seeds(seeds), sigmas=(0.0, 0.4, 1.0), epochs=_quick_epochs(datasets),
                   datasets=datasets, task_counts=(2, 4), cost_steps=4, cost_warmup=1, cost_budget_seconds=30.0,
                   cost_shape=(1, 8, 8), owns=(0.0, 1.5))

    def describe(self) -> dict:
        """What runs.json keeps of the plan."""
        return {"plan": self.name, "seeds": list(self.seeds), "sigmas": list(self.sigmas), "epochs": self.epochs,
                "datasets": list(self.datasets), "optimisers": self.optimisers, "owns": list(self.owns),
                "task counts": list(self.task_counts), "timed steps per cost measurement": self.cost_steps,
                "cost input": list(self.cost_shape), "cost budget (s)": self.cost_budget_seconds,
                "cost memory cap (GB)": self.cost_budget_bytes / 1e9}


def _seeds(n: int) -> tuple[int, ...]:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UserError(f"seeds must be a whole number of at least 1, got {n!r}")
    return tuple(range(n))
