"""Gradient capture at the branch point: a running sum per branch, so an epoch costs one add per batch.

What is captured: dL/dW_b, the gradient of branch b's first-layer weight (the layer reading the hard-shared
layer), straight from the ordinary backward pass. Before any merge a branch serves one task, so this is that
task's gradient, exactly what the paper captures. After a merge the branch's gradient is its group's (the sum
of its tasks' gradients); per-task gradients there would need one extra backward pass per task, and they are
not needed: merges are never undone, so a merged branch is clustered as one point, and its group gradient is
the signal that says whether the group as a whole should join another branch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def gradients_finite(model: nn.Module) -> bool:
    """False when any parameter gradient holds a NaN or an infinity (one fused norm over all of them)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


class BranchGradients:
    """Sum over the epoch's batches of each branch's first-layer weight gradient, dL/dW_b (constant memory).

    Before any merge a branch serves one task, so its gradient is that task's; a merged branch's gradient is
    the gradient of its group's summed loss, which is what decides whether the group should grow.
    """

    def __init__(self, block_keys: list[str]):
        self.block_keys = list(block_keys)
        self.sums: torch.Tensor | None = None
        self.batches = 0

    def add(self, model: nn.Module) -> None:
        grads = [model.blocks[key].weight.grad for key in self.block_keys]
        if any(g is None for g in grads):
            return
        if self.sums is None:
            self.sums = torch.zeros((len(grads), *grads[0].shape), dtype=grads[0].dtype, device=grads[0].device)
        with torch.no_grad():
            for total, grad in zip(self.sums, grads):
                total.add_(grad)
        self.batches += 1

    def mean(self) -> np.ndarray:
        """[branches, *weight shape]: the epoch's mean gradient per branch."""
        if self.sums is None or not self.batches:
            raise ValueError("no gradients were captured this epoch")
        return (self.sums / self.batches).cpu().numpy()
