"""Optuna's samplers as the search uses them, every one picklable: Ray Tune pickles its searcher, sampler included.

Optuna 5.1's genetic samplers (NSGA-II) hold a `threading.Lock`, which no pickle can hold, so NSGA-II leaves it
out of its pickle and makes a new one when loaded. Imported only when a search runs (it imports Optuna).
"""
from __future__ import annotations

import threading

import optuna
from optuna.samplers import RandomSampler, TPESampler

__all__ = ["NSGAIISampler", "RandomSampler", "TPESampler"]


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II that pickles (see the module docstring); everything else is Optuna's."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
