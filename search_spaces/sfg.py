"""Stochastic Filter Groups: Gumbel temperature and its annealing, the weight and entropy penalties, p's init."""
from search_spaces.common import training


def parameters(trial) -> dict:
    return {"tau0": trial.suggest_float("tau0", 0.05, 2.0, log=True),
            "anneal_rate": trial.suggest_categorical("anneal_rate", (0.0, 1e-3, 1e-2)),
            "lambda2": trial.suggest_float("lambda2", 1e-3, 1.0, log=True),
            "lambda1": trial.suggest_categorical("lambda1", (0.0, 5e-4)),
            "p_init": trial.suggest_categorical("p_init", ("uniform", "dirichlet", "vertex"))}


def space(trial) -> dict:
    return {"strategy": "sfg", **parameters(trial), **training(trial)}
