"""Trunk batch norm with running statistics per task, for routed layers whose input differs by task."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .masks import TaskConditioned


class TaskBalancedBatchNorm(TaskConditioned):
    """BatchNorm whose statistics follow each task's own activations.

    Past the first routed layer a unit's input depends on the task's masks, so each task (Algorithm 1: one per
    batch) is normalised with its own batch statistics and keeps its own running average; tasks that reach the
    layer with identical masks so far (`task_class`, one class before the first TRL) feed it the same activations,
    and eval uses their equal-weight mixture, which also fills in tasks not trained yet. One plain running
    average would follow the last tasks drawn and, mixed over tasks, would fit none of them. With G of T tasks
    per batch a task is drawn about every T/G batches, so its average moves by min(1, momentum * T/G).
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, n_tasks: int):
        super().__init__()
        self.weight, self.bias = norm.weight, norm.bias
        self.eps, self.momentum = norm.eps, norm.momentum or 0.1
        channels = norm.num_features
        self.register_buffer("task_mean", torch.zeros(n_tasks, channels))
        self.register_buffer("task_var", torch.ones(n_tasks, channels))
        self.register_buffer("task_seen", torch.zeros(n_tasks, dtype=torch.bool))
        self.register_buffer("task_class", torch.zeros(n_tasks, dtype=torch.long), persistent=False)
        self.one_class = True

    def set_classes(self, classes: np.ndarray) -> None:
        """Each task's input class: tasks with equal classes see equal activations here."""
        self.task_class.copy_(torch.as_tensor(classes, dtype=torch.long))
        self.one_class = len(np.unique(classes)) == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            mean, var = self.eval_statistics()
            if len(self.tasks) == 1 or self.one_class:
                t = self.tasks[0]
                return F.batch_norm(x, mean[t], var[t], self.weight, self.bias, False, 0.0, self.eps)
            return self.normalise_groups(x, mean[self.index], var[self.index])
        rate = min(1.0, self.momentum * len(self.task_seen) / len(self.tasks))
        with torch.no_grad():
            self.task_seen.index_fill_(0, self.index, True)
        if len(self.tasks) == 1:  # the task's own running statistics are updated in place
            t = self.tasks[0]
            return F.batch_norm(x, self.task_mean[t], self.task_var[t], self.weight, self.bias, True, rate, self.eps)
        if self.one_class:  # every task sees these activations: one batch statistic for all
            batch_mean, batch_var = torch.zeros_like(self.task_mean[0]), torch.ones_like(self.task_var[0])
            y = F.batch_norm(x, batch_mean, batch_var, self.weight, self.bias, True, 1.0, self.eps)
            self._update(batch_mean.expand(len(self.tasks), -1), batch_var.expand(len(self.tasks), -1), rate)
            return y
        groups = x.view(len(self.tasks), -1, *x.shape[1:])  # several tasks folded in: each group's own statistics
        var, mean = torch.var_mean(groups, dim=[1] + list(range(3, groups.dim())), unbiased=False)
        n = groups[0].numel() // groups.shape[2]
        self._update(mean.detach(), var.detach() * n / max(n - 1, 1), rate)
        return self.normalise_groups(x, mean, var)

    def normalise_groups(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """x [G*B, C, ...] task-major, group g normalised with mean[g], var[g] ([G, C])."""
        scale = self.weight * torch.rsqrt(var + self.eps)
        shape = (len(mean), 1, -1) + (1,) * (x.dim() - 2)
        groups = x.view(len(mean), -1, *x.shape[1:])
        return torch.addcmul((self.bias - mean * scale).view(shape), groups, scale.view(shape)).view_as(x)

    def _update(self, mean: torch.Tensor, var: torch.Tensor, rate: float) -> None:
        with torch.no_grad():
            for stats, batch in ((self.task_mean, mean), (self.task_var, var)):
                stats.index_copy_(0, self.index, torch.lerp(stats[self.index], batch, rate))

    def eval_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per task [T, C]: mean and variance of the equal-weight mixture of its class's trained tasks (of all
        trained tasks if none in its class is trained yet)."""
        seen, classes = self.task_seen, self.task_class
        if not bool(seen.any()):
            return self.task_mean, self.task_var
        weight = seen.to(self.task_mean.dtype)
        count = torch.zeros(int(classes.max()) + 1, device=seen.device).index_add_(0, classes, weight)
        class_mean = _class_sum(self.task_mean, weight, classes, len(count)) / count.clamp_min(1)[:, None]
        overall = (self.task_mean * weight[:, None]).sum(0) / weight.sum()
        class_mean = torch.where(count[:, None] > 0, class_mean, overall)
        mean = class_mean[classes]
        spread = self.task_var + (self.task_mean - mean) ** 2
        class_var = _class_sum(spread, weight, classes, len(count)) / count.clamp_min(1)[:, None]
        overall_var = ((self.task_var + (self.task_mean - overall) ** 2) * weight[:, None]).sum(0) / weight.sum()
        class_var = torch.where(count[:, None] > 0, class_var, overall_var)
        return mean, class_var[classes]

    def extra_repr(self) -> str:
        return f"tasks={self.task_mean.shape[0]}, channels={self.task_mean.shape[1]}, momentum={self.momentum}"


def _class_sum(values: torch.Tensor, weight: torch.Tensor, classes: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.zeros(n_classes, values.shape[1], dtype=values.dtype, device=values.device).index_add_(
        0, classes, values * weight[:, None])


def input_classes(masks: dict[int, np.ndarray], units: int, n_tasks: int) -> list[np.ndarray]:
    """Per trunk unit, each task's input class: tasks whose masks agree on every routed unit before it."""
    out = []
    for unit in range(units):
        before = [masks[r] for r in sorted(masks) if r < unit]
        rows = np.concatenate(before, 1) if before else np.zeros((n_tasks, 0))
        out.append(np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1))
    return out
