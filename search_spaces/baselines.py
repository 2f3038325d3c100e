"""The papers' baselines: single-task networks, hard sharing, cross-stitch."""
from search_spaces.common import one_of


def no_parameters(trial) -> dict:
    return {}


def cross_stitch(trial) -> dict:
    return {"self_weight": trial.suggest_float("self_weight", 0.5, 1.0)}


STRATEGIES = {"single_task": no_parameters, "hard_sharing": no_parameters, "cross_stitch": cross_stitch}


def space(trial) -> dict:
    return one_of(trial, "baseline", STRATEGIES)
