"""Selective Sharing: the clustering criterion and the knobs of factorisation, clustering and locking."""
from mtlsearch.strategies.selective_sharing import CRITERIA
from search_spaces.common import training


def parameters(trial) -> dict:
    return {"criterion": trial.suggest_categorical("criterion", tuple(CRITERIA)),
            "tt_rank": trial.suggest_int("tt_rank", 2, 8),
            "min_cluster_size": trial.suggest_int("min_cluster_size", 2, 3),
            "start_epoch": trial.suggest_int("start_epoch", 1, 2),
            "patience": trial.suggest_int("patience", 1, 3)}


def space(trial) -> dict:
    return {"strategy": "selective_sharing", **parameters(trial), **training(trial)}
