"""Trunk batch norm whose running statistics weigh every task equally, for one-task-per-batch training."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .masks import TaskConditioned


class TaskBalancedBatchNorm(TaskConditioned):
    """BatchNorm with a plain forward, but running statistics kept per task and averaged over tasks for eval.

    Under Algorithm 1 each batch carries one task, and a routed layer's activations differ by task, so the
    ordinary running average follows whichever tasks were sampled last. Here batch statistics update the active
    tasks' own averages, and eval normalises with their equal-weight mixture (one plain BN, so it exports as is);
    tasks not yet trained are left out of the mixture. With G of T tasks per batch a task is drawn about every
    T/G batches, so its average moves by min(1, momentum * T/G): it spans as many steps as an ordinary BN's
    running average and stays as fresh.
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, n_tasks: int):
        super().__init__()
        self.weight, self.bias = norm.weight, norm.bias
        self.eps, self.momentum = norm.eps, norm.momentum or 0.1
        channels = norm.num_features
        self.register_buffer("task_mean", torch.zeros(n_tasks, channels))
        self.register_buffer("task_var", torch.ones(n_tasks, channels))
        self.register_buffer("task_seen", torch.zeros(n_tasks, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            mean, var = self.mixture()
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        rate = min(1.0, self.momentum * len(self.task_seen) / len(self.tasks))
        with torch.no_grad():
            self.task_seen.index_fill_(0, self.index, True)
        if len(self.tasks) == 1:  # the task's own running statistics are updated in place
            t = self.tasks[0]
            return F.batch_norm(x, self.task_mean[t], self.task_var[t], self.weight, self.bias, True, rate, self.eps)
        batch_mean, batch_var = torch.zeros_like(self.task_mean[0]), torch.ones_like(self.task_var[0])
        y = F.batch_norm(x, batch_mean, batch_var, self.weight, self.bias, True, 1.0, self.eps)  # the batch statistics
        with torch.no_grad():
            for stats, batch in ((self.task_mean, batch_mean), (self.task_var, batch_var)):
                stats.index_copy_(0, self.index, torch.lerp(stats[self.index], batch.expand(len(self.tasks), -1), rate))
        return y

    def mixture(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the equal-weight mixture of the trained tasks' distributions."""
        seen = self.task_seen
        if not bool(seen.any()):
            return self.task_mean[0], self.task_var[0]
        means, variances = self.task_mean[seen], self.task_var[seen]
        mean = means.mean(0)
        return mean, ((variances + means ** 2).mean(0) - mean ** 2).clamp_min(0.0)

    def extra_repr(self) -> str:
        return f"tasks={self.task_mean.shape[0]}, channels={self.task_mean.shape[1]}, momentum={self.momentum}"
