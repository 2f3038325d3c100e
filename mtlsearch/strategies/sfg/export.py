"""The argmax allocation of an SFGNetwork as a plain grouped SharingStructure, with weights for `freeze`.

Per trunk layer l: a block of the n_shared kernels reading the shared block below, and per task a block of its
n_t kernels reading task t's stream below. That stream is A_t y_t + B_t y_shared (the mix has no bias), a linear
map with no activation in between, so it is folded into the reading block's weights: task t's block reads the
task-t and the shared block below directly, with W x A_t[:, K_t] and W x B_t[:, K_shared] as its columns.
The branch of task t reads y_t + y_shared of the top layer the same way. Empty task groups get no block (the
allocation keeps the shared group non-empty, so every block has an input); blocks no task reads are dropped.
"""
from __future__ import annotations

import networkx as nx
import torch

from ...structure.builders import HEAD_OP, op_of
from ...structure.graph import SharingStructure
from ...structure.network import block_prefix
from .layers import SHARED, argmax_allocation


def fold(weight: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Weight columns that read a source through a channel map: W[:, c] -> sum_c W[:, c] M[c, j] (per position
    for a linear layer that reads a flattened conv map)."""
    if weight.dim() == 4:
        return torch.einsum("rckl,cj->rjkl", weight, matrix)
    positions = weight.shape[1] // matrix.shape[0]
    folded = torch.einsum("rcp,cj->rjp", weight.reshape(weight.shape[0], matrix.shape[0], positions), matrix)
    return folded.reshape(weight.shape[0], -1)


class _Builder:
    """Adds blocks and fills the weights dict in BlockNetwork's naming as it goes."""

    def __init__(self, structure: SharingStructure):
        self.s = structure
        self.weights: dict[str, torch.Tensor] = {}

    def block(self, node: str, *, layer: int, kind: str, tasks, op: dict, shape,
              sources: list[tuple[str, torch.Tensor, list[str]]], bias: torch.Tensor, norm=None, **attrs) -> str:
        """A block with in-edges `sources` = (source block, the weight columns it owns, edge tasks)."""
        self.s.add_block(node, layer=layer, kind=kind, tasks=tasks, width=len(bias), shape=shape, op=op, **attrs)
        for src, _, edge_tasks in sources:
            self.s.connect(src, node, tasks=edge_tasks)
        prefix = block_prefix(node)
        self.weights[prefix + "weight"] = torch.cat([columns for _, columns, _ in sources], 1).detach().clone()
        self.weights[prefix + "bias"] = bias.detach().clone()
        for key, value in (norm or {}).items():
            self.weights[prefix + "norm." + key] = value.detach().clone()
        return node

    @staticmethod
    def readers(weight: torch.Tensor, streams: list[tuple[str | None, torch.Tensor, torch.Tensor, list[str]]]
                ) -> list[tuple[str, torch.Tensor, list[str]]]:
        """In-edges of a block whose stream is sum_i M_i y_i, from (source block or None if empty, the source's
        kernels, M_i, edge tasks): each edge owns the weight columns W x M_i[:, kernels]."""
        return [(src, fold(weight, matrix[:, kernels]), tasks)
                for src, kernels, matrix, tasks in streams if src is not None]

    def prune(self) -> None:
        """Drop blocks no task reads (e.g. under an empty group) and set each block's tasks to its readers'."""
        g = self.s.graph
        for node in reversed(list(nx.topological_sort(g))):
            data = g.nodes[node]
            if data["kind"] in ("head", "input"):
                continue
            readers = sorted({t for _, _, e in g.out_edges(node, data=True) for t in e["tasks"]})
            if not readers:
                g.remove_node(node)
                prefix = block_prefix(node)
                self.weights = {k: v for k, v in self.weights.items() if not k.startswith(prefix)}
            else:
                data["tasks"] = readers


def _norm_state(norm) -> dict | None:
    """A branch unit's BatchNorm state on the CPU; None without a BatchNorm."""
    if not isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
        return None
    names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    return {name: getattr(norm, name).detach().cpu() for name in names}


@torch.no_grad()
def argmax_structure(model, problem, strategy: str, config: dict) -> tuple[SharingStructure, dict]:
    """(structure, weights) such that freeze(structure, weights) in eval equals `model` in argmax mode."""
    s = SharingStructure(strategy=strategy, config={**config, "backbone": model.backbone_name},
                         tasks=problem.tasks, input_shape=problem.input_shape)
    b = _Builder(s)
    below = [(s.add_input(), None)] * len(model.group_names)  # per group: (its block, its kernels) below
    for depth in range(len(model.layers)):
        below = _grouped_layer(b, model, depth, below)
    for i, task in enumerate(problem.tasks):
        _branch_and_head(b, model, i, task, below)
    b.prune()
    return s, b.weights


def _grouped_layer(b: _Builder, model, depth: int, below: list) -> list:
    """The blocks of trunk layer `depth` (one per non-empty group); returns (block or None, kernels) per group."""
    layer, everyone, names = model.layers[depth], b.s.task_names, model.group_names
    p = layer.probabilities().detach().cpu()
    members = [torch.nonzero(argmax_allocation(p) == g).flatten() for g in range(len(names))]
    attrs = {"group_sizes": {n: len(m) for n, m in zip(names, members)},
             "mean_p": {n: round(float(v), 5) for n, v in zip(names, p.mean(0))}}
    out = []
    for g, kernels in enumerate(members):
        if len(kernels) == 0:
            out.append((None, kernels))
            continue
        tasks = everyone if g == SHARED else [everyone[g - 1]]
        weight = layer.op.weight.detach().cpu()[kernels]
        if depth == 0:
            sources = [(below[SHARED][0], weight, tasks)]
        elif g == SHARED:  # shared kernels read the shared stream
            eye = torch.eye(model.layers[depth - 1].spec.width)
            sources = b.readers(weight, [(*below[SHARED], eye, everyone)])
        else:  # task-t kernels read stream t = A_t y_t + B_t y_shared
            a, m = model.mixes[depth - 1].matrices(g - 1)
            sources = b.readers(weight, [(*below[g], a.cpu(), tasks), (*below[SHARED], m.cpu(), tasks)])
        node = f"l{depth + 1}_shared" if g == SHARED else f"l{depth + 1}_task_{everyone[g - 1]}"
        b.block(node, layer=depth + 1, kind=layer.spec.type, tasks=tasks, op=op_of(layer.spec),
                shape=(len(kernels), *model.shapes[depth][1:]), sources=sources,
                bias=layer.op.bias.detach().cpu()[kernels],
                norm=layer.norm_state(g, kernels),
                group=names[g], confidence=round(float(p[kernels, g].mean()), 5), **attrs)
        out.append((node, kernels))
    return out


def _branch_and_head(b: _Builder, model, i: int, task, top: list) -> None:
    """Task i's branch and head; the branch's first layer (or the head) reads y_t + y_shared of the top layer."""
    eye = torch.eye(model.layers[-1].spec.width)
    streams = [(*top[i + 1], eye, [task.name]), (*top[SHARED], eye, [task.name])]
    shape, layer = model.shapes[-1], len(model.layers)
    for unit in model.branches[i]:
        layer += 1
        weight = unit.op.weight.detach().cpu()
        node = b.block(f"{task.name}_branch{layer}", layer=layer, kind="branch", tasks=[task.name],
                       op=op_of(unit.spec), shape=unit.spec.out_shape(shape), sources=b.readers(weight, streams),
                       bias=unit.op.bias.detach().cpu(), norm=_norm_state(unit.norm))
        shape = unit.spec.out_shape(shape)
        streams = [(node, torch.arange(unit.spec.width), torch.eye(unit.spec.width), [task.name])]
    weight = model.heads[i].weight.detach().cpu()
    b.block(f"head_{task.name}", layer=layer + 1, kind="head", tasks=[task.name], op=HEAD_OP,
            shape=[task.out_features], sources=b.readers(weight, streams), bias=model.heads[i].bias.detach().cpu(),
            task=task.name)
