"""BlockNetwork: a plain nn.Module that runs a SharingStructure, each task through exactly its blocks.

Tasks whose inputs to a block are identical (same edges, same upstream activations) form one input class and
share one computation, so a hard-shared trunk runs once per batch however many tasks use it. A normalised block
that several input classes reach (Task Routing past its first routed layer) keeps batch-norm running statistics
per task, [tasks of the block, width] in the block's task order: one running average would fit none of them.
"""
from __future__ import annotations

import re
from functools import partial

import networkx as nx
import torch
from torch import nn

from ..backbones.layers import LayerSpec, build_layer
from ..nn import TaskBatchNorm
from .fused import FusedPlan, fusable
from .graph import SharingStructure, edge_fan


def module_key(node: str) -> str:
    return re.sub(r"\W", "_", node)


def block_prefix(node: str) -> str:
    """The state-dict prefix of a node's block in a BlockNetwork (and in exported weights)."""
    return f"blocks.{module_key(node)}."


def stitch_init(op: dict, sources: list[str]) -> torch.Tensor:
    """Cross-stitch start: `self_weight` on the block's own column, the rest spread evenly (Misra et al.)."""
    if len(sources) == 1:
        return torch.ones(1)
    other = (1.0 - op.get("self_weight", 1.0 / len(sources))) / (len(sources) - 1)
    return torch.tensor([op.get("self_weight", other) if s == op.get("self") else other for s in sources])


class Block(nn.Module):
    """One block: weights over the concatenation of its in-edges (slot order), then norm, activation, pool.

    The weights are those of the op its LayerSpec builds (PyTorch's default init, so a fresh freeze trains like a
    fresh backbone), applied to the columns the calling tasks read; a block that several input classes reach
    normalises with running statistics per task (a TaskBatchNorm of `norm_rows` rows).
    """

    def __init__(self, op: dict, width: int, fans: list[int], sources: list[str] = (), norm_rows: int = 0):
        super().__init__()
        self.type = op["type"]
        if self.type == "stitch":
            self.weight = nn.Parameter(stitch_init(op, list(sources)))
        elif self.type in ("conv", "linear"):
            spec = LayerSpec.from_op(op, width)
            norm_layer = partial(TaskBatchNorm, tasks=norm_rows) if norm_rows else None
            module, norm, act, post = build_layer(spec, sum(fans), norm_layer)
            self.weight, self.bias = module.weight, module.bias  # applied by `forward` to the columns read
            self.norm, self.act, self.post = norm, act, post
            self.stride, self.padding = spec.stride, spec.padding

    def forward(self, inputs: list[torch.Tensor], columns: torch.Tensor | None, rows: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The block on its in-edges' outputs; `columns`: the weight columns they read, `rows`: the running
        statistics of the calling tasks (a TaskBatchNorm only)."""
        if columns is None:
            weight = self.weight
        else:
            weight = self.weight.index_select(0 if self.type == "stitch" else 1, columns)
        if self.type == "stitch":
            return sum(w * x for w, x in zip(weight, inputs))
        if self.type == "conv":
            x = torch.cat(inputs, 1) if len(inputs) > 1 else inputs[0]
            y = nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding)
        else:
            x = torch.cat([i.flatten(1) for i in inputs], 1) if len(inputs) > 1 else inputs[0].flatten(1)
            y = nn.functional.linear(x, weight, self.bias)
        y = self.norm(y, rows) if isinstance(self.norm, TaskBatchNorm) else self.norm(y)
        return self.post(self.act(y))


def input_classes(structure: SharingStructure) -> dict[str, list[tuple[list[str], list[int], list[tuple[str, int]]]]]:
    """Per node, its tasks grouped by identical inputs: (tasks, indices of the in-edges they use, sources as
    (node, input class)), in the order of the node's tasks."""
    g = structure.graph
    signature: dict[tuple[str, str], int] = {}
    out = {}
    for node in structure_order(structure):
        edges = structure.in_edges(node)
        classes: dict[tuple, int] = {}
        found: list[tuple[list[str], list[int], list[tuple[str, int]]]] = []
        for task in g.nodes[node]["tasks"]:
            active = [i for i, (_, e) in enumerate(edges) if task in e["tasks"]]
            key = tuple((edges[i][0], signature[edges[i][0], task]) for i in active)
            cls = classes.setdefault(key, len(classes))
            signature[node, task] = cls
            if cls == len(found):
                found.append(([], active, list(key)))
            found[cls][0].append(task)
        out[node] = found
    return out


def structure_order(structure: SharingStructure) -> list[str]:
    g = structure.graph
    return list(nx.lexicographical_topological_sort(g, key=lambda n: (g.nodes[n]["layer"], n)))


def norm_rows(structure: SharingStructure, classes: dict | None = None) -> dict[str, int]:
    """Normalised nodes reached by several input classes -> their number of tasks (a statistics row each)."""
    classes = input_classes(structure) if classes is None else classes
    g = structure.graph
    return {node: len(g.nodes[node]["tasks"]) for node, found in classes.items()
            if g.nodes[node]["op"].get("norm") and len(found) > 1}


def fit_norm_statistics(structure: SharingStructure, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights whose running statistics are per task ([tasks of the node, width]) put in the layout BlockNetwork
    builds: kept per task where several input classes reach the node, else the one row they all hold."""
    rows = norm_rows(structure)
    out = dict(weights)
    for node in structure.graph.nodes:
        for stat in ("running_mean", "running_var"):
            name = f"{block_prefix(node)}norm.{stat}"
            if name in out and out[name].dim() == 2 and node not in rows:
                out[name] = out[name][0]
    return out


class BlockNetwork(nn.Module):
    """forward(x, tasks=None) -> {task: output}; only the blocks the requested tasks use are run. In eval mode
    all tasks run through `FusedPlan`: the blocks of a layer as one convolution where that is cheaper."""

    def __init__(self, structure: SharingStructure):
        super().__init__()
        self.structure = structure
        g = structure.graph
        self.task_names = structure.task_names
        self.order = structure_order(structure)
        classes = input_classes(structure)
        rows = norm_rows(structure, classes)
        self.blocks = nn.ModuleDict()
        self.plan: dict[str, list[tuple[list[str], list[tuple[str, int]], str | None, str | None]]] = {}
        for node in self.order:
            data = g.nodes[node]
            edges = structure.in_edges(node)
            fans = [edge_fan(data["op"], g.nodes[src]["shape"]) for src, _ in edges]
            key = module_key(node)
            if data["op"]["type"] != "input":
                self.blocks[key] = Block(data["op"], data["width"], fans, [s for s, _ in edges], rows.get(node, 0))
            self.plan[node] = []
            for cls, (tasks, active, sources) in enumerate(classes[node]):
                columns = None
                if len(active) < len(edges):
                    offsets = [sum(fans[:i]) for i in range(len(fans))]
                    columns = torch.cat([torch.arange(offsets[i], offsets[i] + fans[i]) for i in active]) \
                        if active else torch.zeros(0, dtype=torch.long)
                    self.register_buffer(f"columns_{key}_{cls}", columns, persistent=False)
                if node in rows:
                    self.register_buffer(f"rows_{key}_{cls}", torch.tensor([data["tasks"].index(t) for t in tasks]),
                                         persistent=False)
                self.plan[node].append((tasks, sources, f"columns_{key}_{cls}" if columns is not None else None,
                                        f"rows_{key}_{cls}" if node in rows else None))
        self.heads = {g.nodes[n]["task"]: n for n in self.order if g.nodes[n]["kind"] == "head"}
        self.inputs = {n for n in self.order if g.nodes[n]["op"]["type"] == "input"}
        self.block_keys = {node: module_key(node) for node in self.order if module_key(node) in self.blocks}
        self.fused = FusedPlan(self) if fusable(self) else None

    def forward(self, x: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(self.task_names if tasks is None else tasks)
        fused = not self.training and self.fused is not None and wanted == set(self.task_names)
        values = self.fused.forward(x) if fused else self.run_blocks(x, wanted)
        outputs = {}
        for task in (self.task_names if tasks is None else tasks):
            node = self.heads[task]
            cls = next(c for c, (ts, *_) in enumerate(self.plan[node]) if task in ts)
            # a fused step's outputs are slices of one tensor: each task gets its own (safetensors refuses views)
            outputs[task] = values[node, cls].clone(memory_format=torch.contiguous_format) if fused \
                else values[node, cls]
        return outputs

    def run_blocks(self, x: torch.Tensor, wanted: set[str]) -> dict[tuple[str, int], torch.Tensor]:
        """Each (node, input class) the wanted tasks use, one block call each."""
        values: dict[tuple[str, int], torch.Tensor] = {}
        for node in self.order:
            for cls, (node_tasks, sources, columns, rows) in enumerate(self.plan[node]):
                if wanted.isdisjoint(node_tasks):
                    continue
                if node in self.inputs:
                    values[node, cls] = x
                    continue
                block = self.blocks[module_key(node)]
                values[node, cls] = block([values[s] for s in sources], getattr(self, columns) if columns else None,
                                          getattr(self, rows) if rows else None)
        return values
