"""All-task evaluation through each task's active channels only, the tasks batched as one grouped convolution.

A TRL's mask zeroes a task's inactive channels, so in eval mode task t's pass needs only the rows of W^(l) its mask
keeps and the columns of the channels it kept below: its pruned sub-network (sigma=0.4, T=10, partition: 0.46 C
channels a layer). The layers before the first TRL see the same input for every task and run once; the first TRL
picks each task's channels from that one output; every later layer is one conv with groups = tasks over the
tasks' gathered weights [G * K_out, K_in, k, k]. Tasks with fewer active channels than the widest (K) are padded
with a channel whose weights, bias and scale are zero. Gathered weights are rebuilt when the model changes.
"""
from __future__ import annotations

import math

import torch

from ...structure.fused import DerivedTensors, grouped_conv2d
from .masks import TaskConditioned, TaskRoutingLayer


def active_channels(masks: torch.Tensor) -> torch.Tensor:
    """[T, K] indices of each task's nonzero mask entries, padded with C (a zero channel) to the widest task's K."""
    tasks, channels = masks.shape
    widest = max(int((masks != 0).sum(1).max()), 1)
    out = torch.full((tasks, widest), channels, dtype=torch.long)
    for t in range(tasks):
        kept = torch.nonzero(masks[t]).flatten()
        out[t, :len(kept)] = kept
    return out


class SparseEvaluation:
    """Eval-mode passes of a TaskRoutedNetwork through the tasks' pruned sub-networks (see the module docstring)."""

    def __init__(self, model):
        self.model = model
        routes = model.routing_layers()
        self.first = min(routes)
        tasks = len(model.task_names)
        self.active, self.positions = {}, {}
        shape = tuple(model.backbone.input_shape)
        for i, (unit, spec) in enumerate(zip(model.trunk, model.backbone.trunk)):
            shape = spec.out_shape(shape)
            self.positions[i] = math.prod(shape[1:])
            if i < self.first:
                continue
            self.active[i] = active_channels(routes[i].masks.cpu()) if i in routes else \
                torch.arange(spec.width).expand(tasks, -1)
        self.last = len(model.trunk) - 1
        self.head_columns = self._head_columns()  # None when the last layer keeps every channel for every task
        self._cache = DerivedTensors(model, self._gather)

    def run(self, x: torch.Tensor, tasks: list[int]) -> list[torch.Tensor]:
        """The heads' outputs for tasks `tasks` on x, one [B, out] per task."""
        model, groups = self.model, len(tasks)
        index = torch.tensor(tasks, device=x.device)
        for module in model.trunk.modules():
            if isinstance(module, TaskConditioned):
                module.set_active(tasks, index)
        h = x
        for unit in model.trunk[:self.first]:
            h = unit(h)
        gathered = self.gathered()
        for i in range(self.first, len(model.trunk)):
            unit = model.trunk[i]
            if i == self.first:  # one output for every task (activation and pool act per channel, so before
                # the TRL's pick, once); each task keeps its channels
                h = unit.post(unit.act(unit.norm(unit.op(h.flatten(1) if unit.spec.type == "linear" and h.dim() > 2
                                                         else h))))
                h = with_zero_channel(h).index_select(1, self.active[i].to(h.device)[index].flatten())
                continue
            weight, bias = (t.index_select(0, index) for t in gathered[i])
            if unit.spec.type == "conv":  # one conv with groups = tasks over [B, G * K_in, H, W]
                h = grouped_conv2d(h, weight.flatten(0, 1), bias.flatten(), unit.spec.stride, unit.spec.padding,
                                   groups)
            else:  # [G, B, F] from here on: batched matrix products, no layout copies
                h = h if h.dim() == 3 else h.reshape(len(x), groups, -1).transpose(0, 1)
                h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            h = unit.post(unit.act(h))
        features = h if h.dim() == 3 else h.reshape(len(x), groups, -1).transpose(0, 1)
        if self.head_columns is None:
            return model.heads(features, tasks)
        return model.heads(features, tasks, self.head_columns.to(features.device)[index])

    def _head_columns(self) -> torch.Tensor | None:
        """[T, K * P]: the heads' input columns of each task's active features (a padding channel's columns are
        clamped to the last one: its features are zero, so whichever weights they read add nothing); None when
        every task keeps every channel of the last layer."""
        last = self.active[self.last]
        if bool((last == torch.arange(last.shape[1])).all()):
            return None
        positions = self.positions[self.last]
        width = self.model.backbone.trunk[self.last].width * positions
        return self._columns(self.last, positions).clamp(max=width - 1)

    def _columns(self, unit: int, positions: int) -> torch.Tensor:
        """[T, K * P]: the flattened columns of each task's active channels of `unit` (channel-major)."""
        channels = self.active[unit]
        return (channels.unsqueeze(-1) * positions + torch.arange(positions)).flatten(1)

    def gathered(self) -> dict:
        """Per unit past the first TRL: each task's weight [T, K_out, K_in, ...] and bias [T, K_out] over its
        channels, its eval-mode batch norm folded in, kept until the model changes (DerivedTensors)."""
        return self._cache.get()

    def _gather(self) -> dict:
        out = {}
        for i in range(self.first + 1, len(self.model.trunk)):
            unit, spec = self.model.trunk[i], self.model.backbone.trunk[i]
            rows = self.active[i].to(unit.op.weight.device)
            if spec.type == "conv":
                columns = self.active[i - 1]
            else:
                columns = self._columns(i - 1, self.positions[i - 1])
            columns = columns.to(rows.device)
            weight = unit.op.weight
            pad_columns = 1 if spec.type == "conv" else self.positions[i - 1]
            weight = torch.cat([weight, weight.new_zeros(weight.shape[0], pad_columns, *weight.shape[2:])], 1)
            weight = with_zero_channel(weight.unsqueeze(0), 1).squeeze(0)
            per_task = weight[rows.unsqueeze(-1), columns.unsqueeze(1)]  # [T, K_out, K_in, ...]
            bias = with_zero_channel(unit.op.bias.unsqueeze(0))[0][rows]
            if spec.norm:  # BN_t(W x + b) = a (W x + b - mean_t) + shift, a = scale / sqrt(var_t + eps)
                mean, var = unit.norm.eval_statistics()
                mean, var = with_zero_channel(mean), with_zero_channel(var, value=1.0)
                tasks = torch.arange(len(rows), device=rows.device).unsqueeze(-1)
                scale = with_zero_channel(unit.norm.weight.unsqueeze(0))[0][rows]  # 0 on padding: a zero channel
                shift = with_zero_channel(unit.norm.bias.unsqueeze(0))[0][rows]
                a = scale * torch.rsqrt(var[tasks, rows] + unit.norm.eps)
                per_task = per_task * a.view(*a.shape, *[1] * (per_task.dim() - 2))
                bias = (bias - mean[tasks, rows]) * a + shift
            out[i] = (per_task, bias)
        return out


def with_zero_channel(x: torch.Tensor, dim: int = 1, value: float = 0.0) -> torch.Tensor:
    """x with one more channel along `dim`, filled with `value` (the channel padded indices point to)."""
    shape = list(x.shape)
    shape[dim] = 1
    return torch.cat([x, x.new_full(shape, value)], dim)


def sparse_evaluation(model) -> SparseEvaluation | None:
    """The sparse evaluation of `model`, or None when it routes no layer."""
    return SparseEvaluation(model) if any(isinstance(m, TaskRoutingLayer) for m in model.trunk.modules()) else None
