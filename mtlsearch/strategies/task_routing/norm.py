"""Trunk batch norm with running statistics per task, for routed layers whose input differs by task."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...nn import TaskBatchNorm
from .masks import TaskConditioned


class TaskBalancedBatchNorm(TaskBatchNorm, TaskConditioned):
    """BatchNorm whose statistics follow each task's own activations.

    Past the first routed layer a unit's input depends on the task's masks, so each task (Algorithm 1: one per
    batch) is normalised with its own batch statistics and keeps its own running average (`rate`: the mean of
    the task's first 1/momentum batches, then a move by `momentum` each time the task is in a batch, a plain
    BatchNorm per task without its start at 0 and 1); tasks that reach the layer with identical masks so far
    (`task_class`) feed it the same activations, and eval uses their equal-weight mixture, which also fills in
    tasks not trained yet. A layer every task reaches alike (one class, before the first TRL) moves every task's
    row with every batch, as one BatchNorm. One running average past a TRL would follow the last tasks drawn and,
    mixed over tasks, would fit none of them.
    """

    def __init__(self, num_features: int, n_tasks: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(num_features, n_tasks, momentum, eps)
        self.register_buffer("task_batches", torch.zeros(n_tasks, dtype=torch.long))  # training batches per task
        self.register_buffer("task_class", torch.zeros(n_tasks, dtype=torch.long), persistent=False)
        self.register_buffer("every_task", torch.arange(n_tasks), persistent=False)
        self.one_class = True

    def set_classes(self, classes: np.ndarray) -> None:
        """Each task's input class: tasks with equal classes see equal activations here."""
        self.task_class.copy_(torch.as_tensor(classes, dtype=torch.long))
        self.one_class = len(np.unique(classes)) == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.every_task if self.one_class else self.index  # one class: every task would see these activations
        if self.training:
            with torch.no_grad():
                self.task_batches.index_add_(0, rows, torch.ones_like(rows))
        if len(self.tasks) == 1 or self.one_class:
            return super().forward(x, rows)
        return self.forward_groups(x, rows)  # several tasks folded in: each group's own statistics

    @property
    def task_seen(self) -> torch.Tensor:
        """[T] bool: the tasks trained so far."""
        return self.task_batches > 0

    def rate(self, rows: torch.Tensor | None) -> torch.Tensor:
        """Per row [len(rows), 1]: 1 / the task's batches so far, at least `momentum`: a cumulative average over
        its first 1/momentum batches, then an exponential one, however rarely the task is drawn."""
        count = self.task_batches if rows is None else self.task_batches[rows]
        return (1.0 / count.to(self.running_mean.dtype)).clamp_min(self.momentum or 0.0).unsqueeze(1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint from before per-task batch counts holds `task_seen`: its trained tasks count as settled."""
        seen = state_dict.pop(prefix + "task_seen", None)
        if seen is not None and prefix + "task_batches" not in state_dict:
            state_dict[prefix + "task_batches"] = seen.long() * math.ceil(1 / (self.momentum or 1.0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def eval_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per task [T, C]: mean and variance of the equal-weight mixture of its class's trained tasks (of all
        trained tasks if none in its class is trained yet)."""
        seen, classes = self.task_seen, self.task_class
        task_mean, task_var = self.running_mean, self.running_var
        if not bool(seen.any()):
            return task_mean, task_var
        weight = seen.to(task_mean.dtype)
        count = torch.zeros(int(classes.max()) + 1, device=seen.device).index_add_(0, classes, weight)
        class_mean = _class_sum(task_mean, weight, classes, len(count)) / count.clamp_min(1)[:, None]
        overall = (task_mean * weight[:, None]).sum(0) / weight.sum()
        class_mean = torch.where(count[:, None] > 0, class_mean, overall)
        mean = class_mean[classes]
        spread = task_var + (task_mean - mean) ** 2
        class_var = _class_sum(spread, weight, classes, len(count)) / count.clamp_min(1)[:, None]
        overall_var = ((task_var + (task_mean - overall) ** 2) * weight[:, None]).sum(0) / weight.sum()
        class_var = torch.where(count[:, None] > 0, class_var, overall_var)
        return mean, class_var[classes]


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
