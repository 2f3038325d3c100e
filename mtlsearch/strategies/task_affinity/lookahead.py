"""Look-ahead inter-task affinity on one batch: how much one task's step on the shared weights moves every loss.

Z(i -> j) = 1 - L_j(theta_s - lr * grad_s L_i, theta_j) / L_j(theta_s, theta_j)   (Fifty et al. 2021, eq. 3)

The shifted weights are passed to `torch.func.functional_call`, so the model's own parameters never change and
no copy of the model is made: one forward pass and one batched backward give every task's gradient, then one
forward pass per task i gives every L_j after i's step. Batch norm runs in training mode (batch statistics, as
the real step does) on copies of the running statistics, which are thrown away.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import Dataset, TensorDataset, default_collate

from ...problems import Problem
from ...structure.network import block_prefix


def shared_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters in blocks that more than one task uses (a hard-sharing trunk), in model order."""
    graph = model.structure.graph
    prefixes = tuple(block_prefix(node) for node, data in graph.nodes(data=True) if len(data["tasks"]) > 1)
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def sample_batch(dataset: Dataset, size: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` training examples drawn without replacement by `generator` (all of them when there are fewer)."""
    index = torch.randperm(len(dataset), generator=generator)[:size]
    if isinstance(dataset, TensorDataset):
        x, y = (t[index] for t in dataset.tensors)
    else:
        x, y = default_collate([dataset[int(i)] for i in index])
    return x.float().to(device), y.float().to(device)


class LookAheadAffinity:
    """Measures the T x T matrix Z (row i: the task whose step is taken, column j: the loss that moves)."""

    def __init__(self, problem: Problem, lr: float):
        self.tasks = problem.tasks
        self.lr = lr

    def losses(self, model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        """Every task's loss on the batch with `weights` in place of the model's own (a [T] tensor)."""
        out = functional_call(model, weights, (x,), {"tasks": [t.name for t in self.tasks]})
        return torch.stack([t.loss(out[t.name], y[:, k]) for k, t in enumerate(self.tasks)])

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shared = shared_parameters(model)
        params = dict(model.named_parameters())
        weights = {**params, **{name: b.clone() for name, b in model.named_buffers()}}
        with torch.enable_grad():
            before = self.losses(model, weights, x, y)
            grads = torch.autograd.grad(before, [params[n] for n in shared], is_grads_batched=True,
                                        grad_outputs=torch.eye(len(self.tasks), device=before.device))
        before = before.detach()
        after = torch.empty(len(self.tasks), len(self.tasks), device=before.device)
        with torch.no_grad():
            for i in range(len(self.tasks)):
                stepped = {n: params[n] - self.lr * g[i] for n, g in zip(shared, grads)}
                after[i] = self.losses(model, {**weights, **stepped}, x, y)
        return 1.0 - after / before.clamp_min(torch.finfo(before.dtype).tiny)
