"""Task groups as architecture: one trunk per group, then each task's own branch and head.

One group of every task is hard sharing (its trunk blocks are named `trunk<layer>` as hard sharing's are); with
several groups, a group's trunk blocks are `<first task>_trunk<layer>`. At the switch every group's trunk starts
from the shared trunk's weights and every branch and head keeps its own.
"""
from __future__ import annotations

import torch

from ...backbones import Backbone
from ...problems import Problem
from ...structure.builders import add_chain, add_head
from ...structure.graph import SharingStructure
from ...structure.network import BlockNetwork, block_prefix


def trunk_prefix(group: list[str], groups: list[list[str]]) -> str:
    return "trunk" if len(groups) == 1 else f"{group[0]}_trunk"


def lay_out(structure: SharingStructure, problem: Problem, backbone: Backbone, groups: list[list[str]]) -> None:
    """input -> one trunk per group -> one branch and one head per task."""
    source = structure.add_input()
    for group in groups:
        trunk, layer = add_chain(structure, backbone.trunk, source, group, trunk_prefix(group, groups), 0)
        for name in group:
            last, top = add_chain(structure, backbone.branch, trunk, [name], f"{name}_branch", layer, kind="branch")
            add_head(structure, problem.task(name), last, top)


def trunk_nodes(group: list[str], groups: list[list[str]], backbone: Backbone) -> list[str]:
    return [f"{trunk_prefix(group, groups)}{layer}" for layer in range(1, len(backbone.trunk) + 1)]


@torch.no_grad()
def split_trunk(shared: BlockNetwork, grouped: BlockNetwork, groups: list[list[str]], backbone: Backbone) -> None:
    """Fill `grouped` from the hard-sharing `shared`: every group's trunk a copy of the shared trunk, branches
    and heads as they were."""
    old = shared.state_dict()
    renamed = {}
    shared_trunk = trunk_nodes(shared.task_names, [shared.task_names], backbone)
    for group in groups:
        for src, dst in zip(shared_trunk, trunk_nodes(group, groups, backbone)):
            renamed[block_prefix(dst)] = block_prefix(src)
    state = grouped.state_dict()
    for name in state:
        prefix = next((p for p in renamed if name.startswith(p)), None)
        source = name if prefix is None else renamed[prefix] + name[len(prefix):]
        state[name] = old[source].clone()
    grouped.load_state_dict(state)
