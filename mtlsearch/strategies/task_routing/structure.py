"""The routed model as a SharingStructure: channels grouped by the tasks that use them, plus exact weights.

A routed layer becomes one block per distinct task set of its channels (partition: one shared block and one
block per task); an edge carries the tasks that use both ends, so a weight slice shared by tasks that feed it
different channels shows as edges with different task sets. The weights dict follows BlockNetwork naming.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...problems import Task
from ...structure.builders import HEAD_OP, op_of
from ...structure.graph import SharingStructure
from ...structure.network import block_prefix, fit_norm_statistics
from .model import TaskRoutedNetwork
from .norm import TaskBalancedBatchNorm


@dataclass
class Source:
    """A block seen from the next layer: its node, its tasks, the channels of its layer it holds (None: all)
    and the positions per channel (H*W after a conv, 1 after a linear layer)."""

    node: str
    tasks: set[int]
    channels: np.ndarray | None
    positions: int

    def columns(self, dst_type: str, fan: int) -> torch.Tensor:
        """Columns of the destination's weight that read this block (a linear layer reads channel-major flattening)."""
        if self.channels is None:
            return torch.arange(fan)
        channels = torch.as_tensor(self.channels)
        if dst_type == "conv":
            return channels
        return (channels[:, None] * self.positions + torch.arange(self.positions)).reshape(-1)


def channel_groups(masks: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(task set, channels) for each distinct set of tasks using a channel; unused channels are dropped.

    Order: larger sets first, then by task set, so partition masks give the shared block, then one per task.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for channel, column in enumerate(masks.T):
        tasks = tuple(np.flatnonzero(column > 0).tolist())
        if tasks:
            groups.setdefault(tasks, []).append(channel)
    return [(tasks, np.array(groups[tasks])) for tasks in sorted(groups, key=lambda ts: (-len(ts), ts))]


def block_name(layer: int, tasks: tuple[int, ...], names: list[str], k: int) -> str:
    if len(tasks) == len(names):
        return f"trunk{layer}_shared"
    return f"trunk{layer}_only_{names[tasks[0]]}" if len(tasks) == 1 else f"trunk{layer}_set{k}"


def _connect(s: SharingStructure, node: str, sources: list[Source], tasks: set[int], dst_type: str, fan: int,
             names: list[str]) -> torch.Tensor:
    """Edges from every source sharing a task with `node`; returns the weight columns in slot order."""
    columns = []
    for src in sources:
        common = src.tasks & tasks
        if common:
            s.connect(src.node, node, tasks=[names[t] for t in common])
            columns.append(src.columns(dst_type, fan))
    return torch.cat(columns)


def _unit_weights(unit, rows: torch.Tensor, columns: torch.Tensor, tasks: list[int]) -> dict[str, torch.Tensor]:
    """Rows (the block's channels) and columns (its sources) of a trunk unit's conv/linear, bias and BN (whose
    statistics come per task of the block; fit_norm_statistics keeps one row where the tasks share an input)."""
    out = {"weight": unit.op.weight.detach()[rows][:, columns], "bias": unit.op.bias.detach()[rows]}
    norm = unit.norm
    if isinstance(norm, TaskBalancedBatchNorm):  # eval statistics per task of the block, [tasks, channels]
        mean, var = norm.eval_statistics()
        index = torch.as_tensor(tasks)
        out.update({"norm.weight": norm.weight.detach()[rows], "norm.bias": norm.bias.detach()[rows],
                    "norm.running_mean": mean[index][:, rows], "norm.running_var": var[index][:, rows],
                    "norm.num_batches_tracked": torch.tensor(0)})
    return out


def routed_structure(model: TaskRoutedNetwork, strategy: str, config: dict, tasks: list[Task]):
    """(SharingStructure, weights) such that freeze(structure, weights) computes the model's eval outputs."""
    backbone, names = model.backbone, model.task_names
    everyone = set(range(len(names)))
    s = SharingStructure(strategy=strategy, config={**config, "backbone": backbone.name}, tasks=tasks,
                         input_shape=backbone.input_shape)
    weights: dict[str, torch.Tensor] = {}

    def store(node: str, tensors: dict[str, torch.Tensor]) -> None:
        weights.update({block_prefix(node) + k: v.detach().cpu().clone() for k, v in tensors.items()})

    shape = tuple(backbone.input_shape)
    sources = [Source(s.add_input(), everyone, None, 1)]
    routes = model.routing_layers()
    for layer, (unit, spec) in enumerate(zip(model.trunk, backbone.trunk), start=1):
        out_shape = spec.out_shape(shape)
        masks = routes[layer - 1].masks.cpu().numpy() if layer - 1 in routes else np.ones((len(names), spec.width))
        fan = shape[0] if spec.type == "conv" else math.prod(shape)
        layer_blocks = []
        for k, (task_set, channels) in enumerate(channel_groups(masks)):
            node = f"trunk{layer}" if layer - 1 not in routes else block_name(layer, task_set, names, k)
            s.add_block(node, layer=layer, kind=spec.type, tasks=[names[t] for t in task_set], width=len(channels),
                        shape=(len(channels),) + tuple(out_shape[1:]), op=op_of(spec), channels=channels.tolist())
            columns = _connect(s, node, sources, set(task_set), spec.type, fan, names)
            order = [names.index(t) for t in s.graph.nodes[node]["tasks"]]  # the structure's order of the block's tasks
            store(node, _unit_weights(unit, torch.as_tensor(channels), columns, order))
            layer_blocks.append(Source(node, set(task_set), channels, math.prod(out_shape[1:])))
        sources, shape = layer_blocks, out_shape
    top = len(backbone.trunk)
    for t, task in enumerate(tasks):
        params = model.heads.task_parameters(t)
        chain, src, fan = model.heads.specs, sources, math.prod(shape)
        for i, spec in enumerate(chain):
            node = s.add_block(f"{task.name}_branch{top + 1 + i}", layer=top + 1 + i, kind="branch", tasks=[task.name],
                               width=spec.width, shape=(spec.width,), op=op_of(spec))
            columns = _connect(s, node, src, {t}, "linear", fan, names)
            block = {"weight": params[f"weight{i}"][:, columns], "bias": params[f"bias{i}"]}
            if spec.norm:
                block.update({"norm.weight": params[f"norm_weight{i}"], "norm.bias": params[f"norm_bias{i}"],
                              "norm.running_mean": params[f"running_mean{i}"],
                              "norm.running_var": params[f"running_var{i}"],
                              "norm.num_batches_tracked": torch.tensor(0)})
            store(node, {k: v.detach() for k, v in block.items()})
            src, fan = [Source(node, {t}, None, 1)], spec.width
        node = s.add_block(f"head_{task.name}", layer=top + len(chain) + 1, kind="head", tasks=[task.name],
                           width=task.out_features, shape=[task.out_features], op=HEAD_OP, task=task.name)
        columns = _connect(s, node, src, {t}, "linear", fan, names)
        store(node, {"weight": params["head_weight"][:, columns].detach(), "bias": params["head_bias"].detach()})
    return s, fit_norm_statistics(s, weights)
