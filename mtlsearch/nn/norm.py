"""Batch norm with running statistics per task, for layers whose input differs by task."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TaskBatchNorm(nn.Module):
    """BatchNorm whose running statistics are kept per task: `running_mean` and `running_var` hold a row each.

    One running average over tasks whose activations differ would fit none of them, so each call names the rows
    of its tasks and moves only those, by one rule (`update`). The scale and shift are shared by the tasks
    (`affine`) or, where they differ by task, passed in by the caller. `momentum=None` keeps a cumulative average.
    """

    def __init__(self, num_features: int, tasks: int, momentum: float | None = 0.1, eps: float = 1e-5,
                 affine: bool = True):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_parameter("weight", nn.Parameter(torch.ones(num_features)) if affine else None)
        self.register_parameter("bias", nn.Parameter(torch.zeros(num_features)) if affine else None)
        self.register_buffer("running_mean", torch.zeros(tasks, num_features))
        self.register_buffer("running_var", torch.ones(tasks, num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, rows: torch.Tensor, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, ...], one batch that every task of `rows` sees: normalised with the batch's statistics, which
        each row's running average moves towards; eval normalises with the first row's."""
        weight, bias = self._affine(weight, bias)
        first = rows[0]
        if not self.training:
            mean, var = self.eval_statistics()
            return F.batch_norm(x, mean[first], var[first], weight, bias, False, 0.0, self.eps)
        rate = self._count(len(rows))
        if len(rows) == 1:  # batch_norm moves the row in place
            return F.batch_norm(x, self.running_mean[first], self.running_var[first], weight, bias, True, rate,
                                self.eps)
        mean, var = torch.zeros_like(self.running_mean[0]), torch.ones_like(self.running_var[0])
        y = F.batch_norm(x, mean, var, weight, bias, True, 1.0, self.eps)  # momentum 1: mean, var := the batch's
        self.update(rows, mean, var, rate)
        return y

    def forward_groups(self, x: torch.Tensor, rows: torch.Tensor, weight: torch.Tensor | None = None,
                       bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [G*B, C, ...], task-major: group g, B samples of task rows[g], normalised with its own statistics
        (see `group_statistics`); weight and bias are [C] or one per group, [G, C]."""
        weight, bias = self._affine(weight, bias)
        groups = x.view(len(rows), -1, *x.shape[1:])
        mean, var = self.group_statistics(groups, rows)
        scale = weight * torch.rsqrt(var + self.eps)
        shape = (len(rows), 1, -1) + (1,) * (x.dim() - 2)
        return torch.addcmul((bias - mean * scale).view(shape), groups, scale.view(shape)).view_as(x)

    def forward_stacked(self, x: torch.Tensor, weight: torch.Tensor | None = None,
                        bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, tasks*C, ...]: every task's C channels side by side, each task's normalised with its own
        statistics; one batch_norm over the stack (a BatchNorm of tasks*C channels); weight and bias [tasks*C]."""
        weight, bias = self._affine(weight, bias)
        rate = self._count(len(self.running_mean)) if self.training else 0.0
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1), weight, bias, self.training,
                            rate, self.eps)

    def group_statistics(self, groups: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance [G, C] of groups [G, B, C, ...], group g for task rows[g]. Training: each group's
        batch statistics (biased variance), after moving row rows[g] towards them; eval: the rows' statistics."""
        if not self.training:
            mean, var = self.eval_statistics()
            return mean[rows], var[rows]
        dims = [1] + list(range(3, groups.dim()))
        mean, var = groups.mean(dims), groups.var(dims, unbiased=False)
        n = groups[0].numel() // groups.shape[2]  # samples per channel in a group
        self.update(rows, mean.detach(), var.detach() * n / max(n - 1, 1), self._count(len(rows)))
        return mean, var

    @torch.no_grad()
    def update(self, rows: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, rate: float) -> None:
        """Moves rows `rows` of the running statistics towards a batch's mean and unbiased variance ([len(rows), C],
        or [C] for all of them): statistic <- lerp(statistic, batch, rate)."""
        for stats, batch in ((self.running_mean, mean), (self.running_var, var)):
            stats.index_copy_(0, rows, torch.lerp(stats[rows], batch, rate))

    def rate(self, batch_tasks: int) -> float:
        """How far a training batch of `batch_tasks` tasks moves their rows: `momentum`, or 1 / batches so far
        (a cumulative average) when momentum is None, as in torch's BatchNorm."""
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def eval_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per task, [tasks, C], that evaluation normalises with: the running statistics."""
        return self.running_mean, self.running_var

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def _count(self, batch_tasks: int) -> float:
        self.num_batches_tracked.add_(1)
        return self.rate(batch_tasks)

    def _affine(self, weight: torch.Tensor | None, bias: torch.Tensor | None):
        return self.weight if weight is None else weight, self.bias if bias is None else bias

    def extra_repr(self) -> str:
        tasks, channels = self.running_mean.shape
        return f"{channels}, tasks={tasks}, momentum={self.momentum}, eps={self.eps}, affine={self.weight is not None}"
