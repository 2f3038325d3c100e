"""The papers' baselines: single-task networks, hard sharing, cross-stitch."""
from search_spaces.common import training

STRATEGIES = ("single_task", "hard_sharing", "cross_stitch")


def parameters(trial, strategy: str) -> dict:
    if strategy == "cross_stitch":
        return {"self_weight": trial.suggest_float("self_weight", 0.5, 1.0)}
    return {}


def space(trial) -> dict:
    strategy = trial.suggest_categorical("baseline", STRATEGIES)
    return {"strategy": strategy, **parameters(trial, strategy), **training(trial)}
