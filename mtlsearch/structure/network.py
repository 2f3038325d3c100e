"""BlockNetwork: a plain nn.Module that runs a SharingStructure, each task through exactly its blocks.

Tasks whose inputs to a block are identical (same edges, same upstream activations) share one computation,
so a hard-shared trunk runs once per batch however many tasks use it.
"""
from __future__ import annotations

import re

import networkx as nx
import torch
from torch import nn

from ..backbones.layers import ACTIVATIONS, Pool
from .graph import SharingStructure, edge_fan


def module_key(node: str) -> str:
    return re.sub(r"\W", "_", node)


def stitch_init(op: dict, sources: list[str]) -> torch.Tensor:
    """Cross-stitch start: `self_weight` on the block's own column, the rest spread evenly (Misra et al.)."""
    if len(sources) == 1:
        return torch.ones(1)
    other = (1.0 - op.get("self_weight", 1.0 / len(sources))) / (len(sources) - 1)
    return torch.tensor([op.get("self_weight", other) if s == op.get("self") else other for s in sources])


class Block(nn.Module):
    """One block: weights over the concatenation of its in-edges (slot order), then norm, activation, pool."""

    def __init__(self, op: dict, width: int, fans: list[int], sources: list[str] = ()):
        super().__init__()
        self.kind = op["type"]
        fan = sum(fans)
        if self.kind == "conv":
            self.weight = nn.Parameter(torch.empty(width, fan, op["kernel"], op["kernel"]))
            self.stride, self.padding = op["stride"], op["padding"]
        elif self.kind == "linear":
            self.weight = nn.Parameter(torch.empty(width, fan))
        elif self.kind == "stitch":
            self.weight = nn.Parameter(stitch_init(op, list(sources)))
        if self.kind in ("conv", "linear"):
            self.bias = nn.Parameter(torch.zeros(width))
            norm = nn.BatchNorm2d if self.kind == "conv" else nn.BatchNorm1d
            self.norm = norm(width) if op.get("norm") else nn.Identity()
            self.act = ACTIVATIONS[op.get("act", "relu")]()
            self.post = Pool(op.get("pool", 0)) if self.kind == "conv" else nn.Dropout(op.get("dropout", 0.0))
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default Conv2d/Linear initialisation, so a fresh freeze trains like a fresh backbone."""
        if self.kind not in ("conv", "linear"):
            return
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        fan_in = self.weight[0].numel()
        bound = 1 / fan_in ** 0.5 if fan_in else 0
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, inputs: list[torch.Tensor], columns: torch.Tensor | None) -> torch.Tensor:
        weight = self.weight if columns is None else self.weight.index_select(0 if self.kind == "stitch" else 1, columns)
        if self.kind == "stitch":
            return sum(w * x for w, x in zip(weight, inputs))
        if self.kind == "conv":
            x = torch.cat(inputs, 1) if len(inputs) > 1 else inputs[0]
            y = nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding)
        else:
            x = torch.cat([i.flatten(1) for i in inputs], 1) if len(inputs) > 1 else inputs[0].flatten(1)
            y = nn.functional.linear(x, weight, self.bias)
        return self.post(self.act(self.norm(y)))


class BlockNetwork(nn.Module):
    """forward(x, tasks=None) -> {task: output}; only the blocks the requested tasks use are run."""

    def __init__(self, structure: SharingStructure):
        super().__init__()
        self.structure = structure
        g = structure.graph
        self.task_names = structure.task_names
        self.order = list(nx.lexicographical_topological_sort(g, key=lambda n: (g.nodes[n]["layer"], n)))
        self.blocks = nn.ModuleDict()
        self.plan: dict[str, dict[int, tuple[list[str], list[tuple[str, int]]]]] = {}
        signature: dict[tuple[str, str], int] = {}
        for node in self.order:
            data = g.nodes[node]
            edges = structure.in_edges(node)
            fans = [edge_fan(data["op"], g.nodes[src]["shape"]) for src, _ in edges]
            if data["op"]["type"] != "input":
                self.blocks[module_key(node)] = Block(data["op"], data["width"], fans, [s for s, _ in edges])
            classes: dict[tuple, int] = {}
            plan: dict[int, tuple[list[str], list[tuple[str, int]], list[int]]] = {}
            for task in data["tasks"]:
                active = [i for i, (_, e) in enumerate(edges) if task in e["tasks"]]
                key = tuple((edges[i][0], signature[edges[i][0], task]) for i in active)
                cls = classes.setdefault(key, len(classes))
                signature[node, task] = cls
                if cls not in plan:
                    plan[cls] = ([], [(edges[i][0], signature[edges[i][0], task]) for i in active], active)
                plan[cls][0].append(task)
            self.plan[node] = {}
            for cls, (tasks, sources, active) in plan.items():
                columns = None
                if len(active) < len(edges):
                    offsets = [sum(fans[:i]) for i in range(len(fans))]
                    columns = torch.cat([torch.arange(offsets[i], offsets[i] + fans[i]) for i in active]) \
                        if active else torch.zeros(0, dtype=torch.long)
                name = f"columns_{module_key(node)}_{cls}"
                if columns is not None:
                    self.register_buffer(name, columns, persistent=False)
                self.plan[node][cls] = (tasks, sources, name if columns is not None else None)
        self.heads = {g.nodes[n]["task"]: n for n in self.order if g.nodes[n]["kind"] == "head"}
        self.inputs = {n for n in self.order if g.nodes[n]["op"]["type"] == "input"}

    def forward(self, x: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(self.task_names if tasks is None else tasks)
        values: dict[tuple[str, int], torch.Tensor] = {}
        for node in self.order:
            for cls, (node_tasks, sources, columns) in self.plan[node].items():
                if wanted.isdisjoint(node_tasks):
                    continue
                if node in self.inputs:
                    values[node, cls] = x
                    continue
                block = self.blocks[module_key(node)]
                values[node, cls] = block([values[s] for s in sources], getattr(self, columns) if columns else None)
        outputs = {}
        for task in (self.task_names if tasks is None else tasks):
            node = self.heads[task]
            cls = next(c for c, (ts, _, _) in self.plan[node].items() if task in ts)
            outputs[task] = values[node, cls]
        return outputs
