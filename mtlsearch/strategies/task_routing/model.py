"""The routed model: backbone trunk with a Task Routing Layer in each routed unit, then per-task branches and heads."""
from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from torch import nn

from ...backbones import Backbone, build_units
from ...problems import Task
from .heads import TaskHeads
from .masks import TaskConditioned, TaskRoutingLayer
from .norm import TaskBalancedBatchNorm, input_classes
from .sparse import sparse_evaluation


class TaskRoutedNetwork(nn.Module):
    """forward(x, tasks=None) -> {task: output}: all requested tasks in one pass, folded into the batch dimension.

    With one task this is Algorithm 1 (that task's masks and head). With G tasks the first TRL fans the batch out
    to G copies ([G*B, ...], task-major) and every TRL applies each group's own mask. In eval mode the tasks run
    in chunks, each one batched pass through the tasks' active channels only (SparseEvaluation), whose widest
    activation holds at most `fold_budget` numbers: on a CPU a fold that falls out of the caches is slower than two
    smaller ones (measured on VGG-11). Trunk batch norms
    keep running statistics per task (see TaskBalancedBatchNorm).
    """

    def __init__(self, backbone: Backbone, tasks: list[Task], masks: dict[int, np.ndarray],
                 fold_budget: int = 1 << 22):
        super().__init__()
        self.backbone = backbone
        self.task_names = [t.name for t in tasks]
        self.task_index = {name: i for i, name in enumerate(self.task_names)}
        self.fold_budget = fold_budget
        self.widest = widest_activation(backbone)
        self.trunk = build_units(backbone.trunk, backbone.input_shape,
                                 partial(TaskBalancedBatchNorm, n_tasks=len(tasks)))
        for unit, mask in masks.items():
            self.trunk[unit].route = TaskRoutingLayer(torch.as_tensor(mask), fans_out=unit == min(masks))
        classes = input_classes(masks, len(self.trunk), len(tasks))
        for unit, unit_classes in zip(self.trunk, classes):
            if isinstance(unit.norm, TaskBalancedBatchNorm):
                unit.norm.set_classes(unit_classes)
        self.heads = TaskHeads(backbone.branch, math.prod(backbone.trunk_shape), [t.out_features for t in tasks])
        self.sparse = sparse_evaluation(self)

    def routing_layers(self) -> dict[int, TaskRoutingLayer]:
        """Trunk unit index -> its TRL."""
        return {i: unit.route for i, unit in enumerate(self.trunk) if isinstance(unit.route, TaskRoutingLayer)}

    def forward(self, x: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        names = self.task_names if tasks is None else list(tasks)
        indices = self._indices(names)
        per_pass = len(names) if self.training else max(1, self.fold_budget // (self.widest * max(len(x), 1)))
        outputs = {}
        for start in range(0, len(names), per_pass):
            chunk = indices[start:start + per_pass]
            outputs.update(zip(names[start:start + per_pass], self.run(x, chunk)))
        return outputs

    def run(self, x: torch.Tensor, tasks: list[int]) -> list[torch.Tensor]:
        """One pass: set the active tasks (the paper's set_active_task), run the trunk, then the heads on [G, B, F].
        Eval mode runs each task through its active channels only (SparseEvaluation): the same outputs."""
        if not self.training and self.sparse is not None:
            return self.sparse.run(x, tasks)
        groups = len(tasks)
        index = torch.tensor(tasks, device=x.device)
        for module in self.trunk.modules():
            if isinstance(module, TaskConditioned):
                module.set_active(tasks, index)
        h = x
        for unit in self.trunk:
            h = unit(h)
        return self.heads(h.reshape(-1, len(x), h[0].numel()).expand(groups, -1, -1), tasks)

    def _indices(self, names: list[str]) -> list[int]:
        unknown = [n for n in names if n not in self.task_index]
        if unknown or not names or len(set(names)) != len(names):
            problem = f"unknown task(s) {', '.join(map(repr, unknown))}" if unknown else "tasks must be distinct"
            raise ValueError(f"{problem}; valid: {', '.join(self.task_names)}")  # a caller's bug, not a user's input
        return [self.task_index[n] for n in names]


def widest_activation(backbone: Backbone) -> int:
    """Numbers per sample in the largest trunk activation (a conv's output before its pool)."""
    widest, shape = 1, tuple(backbone.input_shape)
    for spec in backbone.trunk:
        widest = max(widest, math.prod(replace(spec, pool=0).out_shape(shape)))
        shape = spec.out_shape(shape)
    return widest
