"""Selective Sharing: the clustering criterion and the knobs of factorisation, clustering and locking."""
from mtlsearch.strategies.selective_sharing import CRITERIA
from search_spaces.common import training
from search_spaces.ranges import Choice, Int, draw

RANGES = {"criterion": Choice(tuple(CRITERIA)),
          "tt_rank": Int(2, 8),
          "min_cluster_size": Int(2, 3),
          "start_epoch": Int(1, 2),
          "patience": Int(1, 3)}


def parameters(trial) -> dict:
    return draw(trial, RANGES)


def space(trial) -> dict:
    return {"strategy": "selective_sharing", **parameters(trial), **training(trial)}
