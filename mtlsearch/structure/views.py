"""Derived views of a SharingStructure: parameters per task, sharing per layer, task affinity and groups.

A block's parameters are split as the network stores them: each in-edge owns its slice of the block's
weight (counted for the tasks on the edge), the block owns its bias and norm (counted for the block's tasks).
So weights shared by tasks that see different activations (Task Routing) count as shared.
"""
from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np

from .graph import SharingStructure, own_params


def _pieces(structure: SharingStructure, layers: Iterable[int] | None = None):
    """(parameter count, tasks using it) for every block's own parameters and every edge's weight slice.

    An edge belongs to the layer of the block it feeds (that block stores its weights).
    """
    g = structure.graph
    keep = None if layers is None else set(layers)
    for node, data in g.nodes(data=True):
        if keep is None or data["layer"] in keep:
            yield own_params(data["op"], data["width"]), set(data["tasks"])
    for _, dst, data in g.edges(data=True):
        if keep is None or g.nodes[dst]["layer"] in keep:
            yield data["params"], set(data["tasks"])


def params_per_task(structure: SharingStructure, layers: Iterable[int] | None = None) -> dict[str, int]:
    """Parameters each task's forward pass uses (optionally only in `layers`)."""
    counts = dict.fromkeys(structure.task_names, 0)
    for n, tasks in _pieces(structure, layers):
        for t in tasks:
            counts[t] += n
    return counts


def total_params(structure: SharingStructure) -> int:
    """Parameters of the whole frozen model (every task's blocks, each counted once)."""
    return sum(data["params"] for _, data in structure.graph.nodes(data=True))


def layers(structure: SharingStructure) -> list[int]:
    """Layers that hold units (the input layer excluded), bottom to top."""
    return sorted({d["layer"] for _, d in structure.graph.nodes(data=True) if d["op"]["type"] != "input"})


def sharing_ratio(structure: SharingStructure) -> dict[int, float]:
    """Per layer: units in blocks used by more than one task / all units of that layer."""
    shared: dict[int, int] = {}
    units: dict[int, int] = {}
    for _, data in structure.graph.nodes(data=True):
        if data["op"]["type"] == "input":
            continue
        layer = data["layer"]
        units[layer] = units.get(layer, 0) + data["width"]
        shared[layer] = shared.get(layer, 0) + (data["width"] if len(data["tasks"]) > 1 else 0)
    return {layer: shared[layer] / units[layer] for layer in sorted(units)}


def task_affinity(structure: SharingStructure, layers: Iterable[int] | None = None) -> np.ndarray:
    """T x T matrix, task order: entry (i, j) is the fraction of task i's parameters that task j also uses."""
    index = {t: i for i, t in enumerate(structure.task_names)}
    both = np.zeros((len(index), len(index)))
    for n, tasks in _pieces(structure, layers):
        ids = [index[t] for t in tasks]
        both[np.ix_(ids, ids)] += n
    own = np.diag(both)[:, None]
    return np.divide(both, own, out=np.zeros_like(both), where=own > 0)


def task_groups(structure: SharingStructure, layer: int) -> list[list[str]]:
    """Tasks partitioned at `layer`: tasks are together when a chain of co-used blocks links them.

    Tasks that use no block at that layer stand alone. Groups come in the order of their first task.
    """
    names = structure.task_names
    linked = nx.Graph()
    linked.add_nodes_from(names)
    for _, data in structure.graph.nodes(data=True):
        if data["layer"] == layer and data["op"]["type"] != "input":
            tasks = data["tasks"]
            linked.add_edges_from(zip(tasks, tasks[1:]))
    order = {t: i for i, t in enumerate(names)}
    groups = [sorted(c, key=order.get) for c in nx.connected_components(linked)]
    return sorted(groups, key=lambda c: order[c[0]])


def deepest_grouping(structure: SharingStructure) -> tuple[int | None, list[list[str]]]:
    """(layer, groups) at the deepest layer where tasks still share a block: the grouping that stands for a whole
    network when runs are compared; (None, every task alone) when no block is shared."""
    for layer in reversed(layers(structure)):
        groups = task_groups(structure, layer)
        if any(len(g) > 1 for g in groups):
            return layer, groups
    return None, [[t] for t in structure.task_names]


def layer_kinds(structure: SharingStructure, layer: int) -> str:
    """The kinds of the blocks at `layer` (e.g. "conv", "branch"), joined by "/"."""
    kinds = sorted({d["kind"] for _, d in structure.graph.nodes(data=True) if d["layer"] == layer})
    return "/".join(kinds)


def _groups_text(groups: list[list[str]], limit: int = 6) -> str:
    """Groups as '[a b] [c]', at most `limit` groups spelled out."""
    if len(groups) == 1:
        return "all together"
    if all(len(g) == 1 for g in groups):
        return "all apart"
    shown = " ".join("[" + " ".join(g) + "]" for g in groups[:limit])
    return shown + (f" ... ({len(groups)} groups)" if len(groups) > limit else "")


def summary(structure: SharingStructure) -> str:
    """Text summary: totals and metrics, parameters per task, and sharing and groups per layer."""
    g = structure.graph
    names = structure.task_names
    lines = [f"strategy {structure.strategy}, {len(names)} tasks, {g.number_of_nodes()} blocks, "
             f"{total_params(structure):,} parameters"]
    metrics = g.graph.get("metrics") or {}
    if metrics:
        lines.append("metrics: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in metrics.items()))
    per_task = params_per_task(structure)
    affinity = task_affinity(structure)
    width = max(len(t) for t in names)
    lines += ["", f"{'task':<{width}}  {'params':>12}  shared with others (mean affinity)"]
    for i, t in enumerate(names):
        others = np.delete(affinity[i], i)
        mean = f"{others.mean():.3f}" if len(others) else "-"
        lines.append(f"{t:<{width}}  {per_task[t]:>12,}  {mean}")
    ratios = sharing_ratio(structure)
    lines += ["", f"{'layer':>5}  {'kind':<16} {'blocks':>6} {'units':>7}  {'shared':>6}  groups"]
    for layer, ratio in ratios.items():
        blocks = [d for _, d in g.nodes(data=True) if d["layer"] == layer]
        units = sum(d["width"] for d in blocks)
        lines.append(f"{layer:>5}  {layer_kinds(structure, layer):<16} {len(blocks):>6} {units:>7}  {ratio:>6.2f}  "
                     f"{_groups_text(task_groups(structure, layer))}")
    return "\n".join(lines)
