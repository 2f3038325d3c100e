"""Stochastic Filter Groups: Gumbel temperature and its annealing, the weight and entropy penalties, p's init."""
from search_spaces.common import training
from search_spaces.ranges import Choice, Float, draw

RANGES = {"tau0": Float(0.05, 2.0, log=True),
          "anneal_rate": Choice((0.0, 1e-3, 1e-2)),
          "lambda2": Float(1e-3, 1.0, log=True),
          "lambda1": Choice((0.0, 5e-4)),
          "p_init": Choice(("uniform", "dirichlet", "vertex"))}


def parameters(trial) -> dict:
    return draw(trial, RANGES)


def space(trial) -> dict:
    return {"strategy": "sfg", **parameters(trial), **training(trial)}
