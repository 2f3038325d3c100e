"""What defines a search and what it records per trial: the leaf every other search module builds on.

It imports nothing from the rest of the search, so the driver, the backends and the study helpers all read
the same `SearchConfig`, choices and `TrialRecord` without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..errors import UserError, choice_error

BACKENDS = ("ray", "optuna")
SCHEDULERS = ("asha", "none")  # none: every trial runs all its epochs
SAMPLERS = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "random": "RandomSampler"}  # classes of search.samplers
OBJECTIVES = {"score": "maximize", "params": "minimize"}
STUDY_SETTINGS = ("dataset", "space", "trials", "objectives", "sampler", "seed", "fixed")  # its workers share these


def parse_objectives(text: str | list) -> list[str]:
    """`score` or `score,params` (a string or a list): the validation score first, then optionally the size."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    bad = [n for n in names if n not in OBJECTIVES]
    if bad or not names or names[0] != "score" or len(set(names)) != len(names):
        raise UserError(f"`objectives` {','.join(names) or '(empty)'} is not valid; valid: score, or score,params",
                        ("objectives",))
    return names


def make_sampler(name: str, seed: int):
    """The Optuna sampler called `name` (a key of SAMPLERS), seeded."""
    if name not in SAMPLERS:
        raise choice_error("sampler", name, SAMPLERS)
    from . import samplers  # only a search that runs needs Optuna: `mtlsearch --help` stays quick

    return getattr(samplers, SAMPLERS[name])(seed=seed)


def describe_differences(mine: dict, theirs: dict) -> str | None:
    """`trials 6 there, 4 here; ...` for the settings two searches do not share, or None when they agree."""
    differing = [f"{key} {theirs[key]} there, {mine[key]} here" for key in mine
                 if key in theirs and theirs[key] != mine[key]]
    return "; ".join(differing) or None


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the search; its state is saved in the run directory, so it can be resumed."""

    def __init__(self, run_dir: Path):
        super().__init__(f"search interrupted; its state is saved in {run_dir}: resume it with "
                         f"mtlsearch search --resume {run_dir}, or in Python with search(config, resume=True)")
        self.run_dir = run_dir


@dataclass
class SearchConfig:
    """Everything that defines a search; saved as search.json so resuming needs only the directory."""

    dataset: str = "digits"
    space: str = "all"
    trials: int = 12
    name: str = "search"
    out: str = "runs"
    backend: str = "ray"
    objectives: list[str] = field(default_factory=lambda: ["score"])
    sampler: str = "tpe"
    scheduler: str | None = None  # None or "none": no early stopping
    seed: int = 0
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int = 2
    storage: str | None = None
    storage_path: str | None = None  # Ray: where trials checkpoint (a directory every node sees, or s3://...)
    data_root: str | None = None
    fixed: dict = field(default_factory=dict)  # settings that override what the space samples
    study: str | None = None  # the Optuna study's name; None: `name` (a copied directory keeps the original's)

    def __post_init__(self):
        for what, value, valid in (("backend", self.backend, BACKENDS), ("sampler", self.sampler, SAMPLERS),
                                   ("scheduler", self.scheduler or "none", SCHEDULERS)):
            if value not in valid:
                raise choice_error(what, value, valid)
        self.scheduler = None if self.scheduler == "none" else self.scheduler
        self.objectives = parse_objectives(self.objectives)
        for name, value in (("trials", self.trials), ("concurrency", self.concurrency)):
            if value < 1:
                raise UserError(f"`{name}` must be at least 1, got {value}", (name,))
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UserError("`cpus_per_trial` must be > 0 and `gpus_per_trial` >= 0",
                            ("cpus_per_trial", "gpus_per_trial"))

    def study_settings(self) -> dict:
        """What every worker of one Optuna study must agree on; the study records them, a joining worker compares."""
        return {name: getattr(self, name) for name in STUDY_SETTINGS}

    @property
    def study_name(self) -> str:
        return self.study or self.name

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name


class TrialStatus(str, Enum):
    """How a trial ended; only `done` trials count for the Pareto front and the best structures."""

    DONE = "done"
    PRUNED = "pruned"  # Optuna's median pruner stopped it
    STOPPED = "stopped"  # ASHA stopped it early
    FAILED = "failed"
    UNFINISHED = "unfinished"

    def __str__(self) -> str:
        return self.value


@dataclass
class TrialRecord:
    """One trial as the leaderboard shows it, the same from Ray Tune and from Optuna."""

    trial: str
    strategy: str
    status: TrialStatus
    sampled: dict = field(default_factory=dict)  # what the space drew: the strategy and its settings
    val_score: float | None = None
    params: int | None = None
    epochs_done: int | None = None
    error: str | None = None
    state_path: str | None = None  # the trainer state of a finished trial, for exporting it
