"""Optuna without Ray, for your own `study.optimize`: an objective for a problem and a space, with pruning,
and study storage shared by several workers.

A thin public face over `mtlsearch.search.study` and `mtlsearch.search.config`, where the search keeps them.
"""
from .search.config import OBJECTIVES, parse_objectives
from .search.study import create_study, objective, storage_for

__all__ = ["OBJECTIVES", "create_study", "objective", "parse_objectives", "storage_for"]
