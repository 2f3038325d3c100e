"""The papers' baselines: single-task networks, hard sharing, cross-stitch."""
from search_spaces.common import one_of
from search_spaces.ranges import Float

STRATEGIES = {"single_task": {}, "hard_sharing": {}, "cross_stitch": {"self_weight": Float(0.5, 1.0)}}


def space(trial) -> dict:
    return one_of(trial, "baseline", STRATEGIES)
