"""Branch groups as architecture: building the grouped structure, merging groups and carrying weights over."""
from __future__ import annotations

import numpy as np
import torch

from ...backbones import Backbone
from ...problems import Problem
from ..groups import check_groups as check_task_groups
from ...structure.builders import add_chain, add_head
from ...structure.graph import SharingStructure
from ...structure.network import BlockNetwork, block_prefix, module_key

MERGE_RULES = ("lowest_loss", "mean", "max", "min")


def check_groups(groups, task_names: list[str]) -> list[list[str]]:
    """Groups that cover every task exactly once, tasks in problem order, groups ordered by their first task."""
    return check_task_groups(groups, task_names, "selective_sharing")


def branch_nodes(group: list[str], backbone: Backbone) -> list[str]:
    """Node ids of a group's branch blocks, named after its first task (hard sharing's names before any merge)."""
    return [f"{group[0]}_branch{len(backbone.trunk) + k}" for k in range(1, len(backbone.branch) + 1)]


def lay_out(structure: SharingStructure, problem: Problem, backbone: Backbone, groups: list[list[str]]) -> None:
    """input -> trunk (feature extractor + hard-shared layer) -> one branch per group -> one head per task."""
    trunk, layer = add_chain(structure, backbone.trunk, structure.add_input(), structure.task_names, "trunk", 0)
    for group in groups:
        last, top = add_chain(structure, backbone.branch, trunk, group, f"{group[0]}_branch", layer, kind="branch")
        for name in group:
            add_head(structure, problem.task(name), last, top)


def _copy_block(model: BlockNetwork, src: str, dst: str) -> None:
    model.blocks[module_key(dst)].load_state_dict(model.blocks[module_key(src)].state_dict())


@torch.no_grad()
def tie_initial_weights(model: BlockNetwork, groups: list[list[str]], backbone: Backbone) -> None:
    """Every branch starts as a copy of the first, every head as a copy of the first head of its size."""
    first = branch_nodes(groups[0], backbone)
    for group in groups[1:]:
        for src, dst in zip(first, branch_nodes(group, backbone)):
            _copy_block(model, src, dst)
    by_size: dict[int, str] = {}
    for task, head in model.heads.items():
        width = model.structure.graph.nodes[head]["width"]
        if width in by_size:
            _copy_block(model, by_size[width], head)
        else:
            by_size[width] = head


def merge_groups(groups: list[list[str]], labels: np.ndarray, task_names: list[str]):
    """(new groups, for each new group the indices of the old groups it joins); same label >= 0 joins."""
    index = {t: i for i, t in enumerate(task_names)}
    parts: dict[tuple, list[int]] = {}
    for i, label in enumerate(labels):
        parts.setdefault(("alone", i) if label < 0 else ("cluster", int(label)), []).append(i)
    merged = sorted(((sorted((t for i in part for t in groups[i]), key=index.__getitem__), part)
                     for part in parts.values()), key=lambda item: index[item[0][0]])
    return [tasks for tasks, _ in merged], [part for _, part in merged]


def branch_loss(group: list[str], losses: dict[str, float]) -> float:
    """A branch's aggregated loss: the mean over its tasks of the epoch's training loss (inf when unknown)."""
    values = [losses[t] for t in group if t in losses]
    return float(np.mean(values)) if values else float("inf")


def _combine(tensors: list[torch.Tensor], rule: str) -> torch.Tensor:
    """Elementwise mean / max / min of the branches' tensors (BatchNorm's batch counter: the max)."""
    if len(tensors) == 1:
        return tensors[0].clone()
    stacked = torch.stack(tensors)
    if not stacked.is_floating_point() or rule == "max":
        return stacked.amax(0)
    return stacked.mean(0) if rule == "mean" else stacked.amin(0)


@torch.no_grad()
def carry_weights(old: BlockNetwork, new: BlockNetwork, old_groups, new_groups, sources, backbone: Backbone,
                  rule: str, losses: dict[str, float]) -> dict[str, str]:
    """Fill `new` from `old`: trunk and heads as they were, each branch kept or combined from its sources.

    Returns, for every merged group (by its first task), the first task of the branch that was kept
    (lowest_loss) or the rule that combined them.
    """
    old_state, state, kept = old.state_dict(), new.state_dict(), {}
    branch_keys = {}
    for group, part in zip(new_groups, sources):
        if rule == "lowest_loss":
            best = min(part, key=lambda i: (branch_loss(old_groups[i], losses), i))
            part_used, how = [best], old_groups[best][0]
        else:
            part_used, how = part, rule
        if len(part) > 1:
            kept[group[0]] = how
        for layer, dst in enumerate(branch_nodes(group, backbone)):
            srcs = [branch_nodes(old_groups[i], backbone)[layer] for i in part_used]
            branch_keys[block_prefix(dst)] = [block_prefix(s) for s in srcs]
    for name in state:
        prefix = next((p for p in branch_keys if name.startswith(p)), None)
        if prefix is None:
            state[name] = old_state[name].clone()
        else:
            suffix = name[len(prefix):]
            state[name] = _combine([old_state[p + suffix] for p in branch_keys[prefix]], rule)
    new.load_state_dict(state)
    return kept
