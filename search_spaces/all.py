"""All four discovery strategies in one space: the strategy is a categorical, its parameters conditional on it."""
from search_spaces import selective_sharing, sfg, task_affinity, task_routing
from search_spaces.common import one_of

STRATEGIES = {"task_routing": task_routing.RANGES, "sfg": sfg.RANGES, "selective_sharing": selective_sharing.RANGES,
              "task_affinity": task_affinity.RANGES}


def space(trial) -> dict:
    return one_of(trial, "strategy", STRATEGIES)
