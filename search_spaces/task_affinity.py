"""Task affinity: the most groups, how often affinity is measured, the look-ahead step and when groups are chosen."""
from search_spaces.common import training
from search_spaces.ranges import Float, Int, draw

RANGES = {"groups": Int(2, 6),
          "affinity_every": Int(1, 10),
          "lookahead_lr": Float(0.01, 1.0, log=True),
          "switch_epoch": Int(1, 2)}


def parameters(trial) -> dict:
    return draw(trial, RANGES)


def space(trial) -> dict:
    return {"strategy": "task_affinity", **parameters(trial), **training(trial)}
