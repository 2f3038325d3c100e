"""Network selection: the task groups, at most k of them, with the highest total affinity (Fifty et al. 2021, 3.2).

A task's affinity from its group is the mean of Z(i -> j) over the other members i; a task alone has 0 (no
transfer, no harm). A grouping's total affinity is the sum over tasks. The groups here are disjoint (a
partition): each task trains on exactly the trunk that serves it. The published selection also lets groups
overlap, a task then training with several groups and being served by its best one; we leave that out so that
the trained network is the exported one.

Search: exact up to EXACT_TASKS tasks (dynamic programming over subsets, O(k 3^T)); greedy beyond (start from
every task alone and merge the two groups whose union gains most, merging while more than k groups remain,
stopping when no merge gains).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

EXACT_TASKS = 12


def affinity_onto(affinity: np.ndarray, group) -> np.ndarray:
    """For each task j of `group` (indices), the mean affinity onto j from the group's other tasks (0 alone)."""
    group = list(group)
    if len(group) < 2:
        return np.zeros(len(group))
    block = np.asarray(affinity, dtype=float)[np.ix_(group, group)]
    return (block.sum(0) - np.diag(block)) / (len(group) - 1)


def total_affinity(affinity: np.ndarray, groups) -> float:
    """The objective: the sum over tasks of the affinity onto each task from its group."""
    return float(sum(affinity_onto(affinity, g).sum() for g in groups))


def _members(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _exact(affinity: np.ndarray, max_groups: int) -> list[list[int]]:
    n = len(affinity)
    score = [0.0] * (1 << n)
    for mask in range(1, 1 << n):
        score[mask] = float(affinity_onto(affinity, _members(mask)).sum())

    @lru_cache(maxsize=None)
    def best(mask: int, k: int) -> tuple[float, tuple[int, ...]]:
        """The best partition of `mask` into at most k groups, as (total, group masks)."""
        if mask == 0:
            return 0.0, ()
        if k == 0:
            return -np.inf, ()
        low = mask & -mask
        rest = mask ^ low
        found, parts = -np.inf, ()
        sub = rest
        while True:  # every group holding the lowest task, largest first
            value, others = best(rest ^ sub, k - 1)
            value += score[sub | low]
            if value > found:
                found, parts = value, (sub | low, *others)
            if sub == 0:
                break
            sub = (sub - 1) & rest
        return found, parts

    return [_members(m) for m in best((1 << n) - 1, min(max_groups, n))[1]]


def _greedy(affinity: np.ndarray, max_groups: int) -> list[list[int]]:
    groups = [[i] for i in range(len(affinity))]
    while len(groups) > 1:
        gains = {(a, b): total_affinity(affinity, [groups[a] + groups[b]])
                 - total_affinity(affinity, [groups[a], groups[b]])
                 for a in range(len(groups)) for b in range(a + 1, len(groups))}
        (a, b), gain = max(gains.items(), key=lambda item: item[1])
        if gain <= 0 and len(groups) <= max_groups:
            break
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    return groups


def choose_groups(affinity, max_groups: int) -> list[list[int]]:
    """At most `max_groups` disjoint groups covering every task (indices into `affinity`), maximising the total
    affinity; groups sorted by their first task.

    Example:
        >>> choose_groups([[0, .9, 0], [.9, 0, 0], [0, 0, 0]], 2)
        [[0, 1], [2]]
    """
    affinity = np.asarray(affinity, dtype=float)
    if affinity.ndim != 2 or affinity.shape[0] != affinity.shape[1] or max_groups < 1:
        raise ValueError(f"choose_groups needs a square matrix and max_groups >= 1, got {affinity.shape}, "
                         f"{max_groups}")
    search = _exact if len(affinity) <= EXACT_TASKS else _greedy
    return sorted((sorted(g) for g in search(affinity, max_groups)), key=lambda g: g[0])
