"""BatchNorm statistics for the allocations used at evaluation time.

Training samples a new allocation every step, so the running BN statistics average over many networks and
match none of them (the streams a kernel reads change with the allocation below it). Before evaluating, the
statistics are recomputed for the argmax allocation (and for each Monte Carlo allocation) from recent
training inputs, as one-shot architecture searches do for the sub-network they deploy.
"""
from __future__ import annotations

from collections import deque

import torch
from torch import nn

from ...nn import TaskBatchNorm

BatchNorms = list[nn.modules.batchnorm._BatchNorm | TaskBatchNorm]


def batch_norms(model: nn.Module) -> BatchNorms:
    return [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, TaskBatchNorm))]


def statistics(norms: BatchNorms) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.running_mean.clone(), m.running_var.clone()) for m in norms]


def load_statistics(norms: BatchNorms, stats: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for m, (mean, var) in zip(norms, stats):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)


class Calibrator:
    """Keeps the last `batches` training inputs and recomputes BN statistics for a given allocation."""

    def __init__(self, batches: int):
        self.inputs: deque[torch.Tensor] = deque(maxlen=batches)

    def remember(self, x: torch.Tensor) -> None:
        if self.inputs.maxlen:
            self.inputs.append(x.detach())

    @property
    def ready(self) -> bool:
        return len(self.inputs) > 0

    @torch.no_grad()
    def calibrate(self, model: nn.Module, run) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Exact averages of the batch statistics over the remembered inputs for `run(x)` (one allocation);
        the model must be in training mode. Dropout is switched off meanwhile. Returns the statistics."""
        norms = batch_norms(model)
        dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        for m in dropouts:
            m.eval()
        try:
            for x in self.inputs:
                run(x)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            for m in dropouts:
                m.train()
        return statistics(norms)
