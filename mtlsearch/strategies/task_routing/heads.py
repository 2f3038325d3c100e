"""Each task's branch layers and output layer, one parameter vector per task, run for many tasks at once."""
from __future__ import annotations

import math

import torch
from torch import nn

from ...backbones.layers import ACTIVATIONS, LayerSpec
from ...nn import TaskBatchNorm


class TaskHeads(nn.Module):
    """Per-task branch (linear -> BN -> activation -> dropout, per LayerSpec) and output layer.

    A task's parameters are packed in one vector, so a one-task step touches one vector (Adam skips the others)
    and its cost does not grow with the task count; several tasks run as batched matrix products over their
    stacked vectors, one group per output width, never as a Python loop over tasks.
    """

    def __init__(self, branch: list[LayerSpec], in_features: int, out_features: list[int], momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        if any(spec.type != "linear" for spec in branch):
            raise ValueError("task_routing branches must be linear layers")
        self.specs = list(branch)
        self.out_features = list(out_features)
        self.acts = nn.ModuleList(ACTIVATIONS[spec.act]() for spec in self.specs)
        self.drops = nn.ModuleList(nn.Dropout(spec.dropout) for spec in self.specs)
        self.norms = nn.ModuleList(TaskBatchNorm(spec.width, len(out_features), momentum, eps, affine=False)
                                   if spec.norm else nn.Identity() for spec in self.specs)
        self.shapes: list[tuple[str, tuple[int, ...]]] = []  # the branch part of every task's vector
        self.fan_in: dict[str, int] = {}
        width = in_features
        for i, spec in enumerate(self.specs):
            self.shapes += [(f"weight{i}", (spec.width, width)), (f"bias{i}", (spec.width,))]
            self.fan_in[f"weight{i}"] = self.fan_in[f"bias{i}"] = width
            if spec.norm:
                self.shapes += [(f"norm_weight{i}", (spec.width,)), (f"norm_bias{i}", (spec.width,))]
            width = spec.width
        self.features = width
        self.fan_in["head_weight"] = self.fan_in["head_bias"] = width
        self.vectors = nn.ParameterList(nn.Parameter(torch.empty(self.size(out))) for out in out_features)
        self.reset_parameters()

    def layout(self, out: int) -> list[tuple[str, tuple[int, ...]]]:
        return self.shapes + [("head_weight", (out, self.features)), ("head_bias", (out,))]

    def size(self, out: int) -> int:
        return sum(math.prod(shape) for _, shape in self.layout(out))

    def unpack(self, vectors: torch.Tensor, out: int) -> dict[str, torch.Tensor]:
        """Views [G, *shape] of each named tensor in stacked vectors [G, size(out)]."""
        views, offset = {}, 0
        for name, shape in self.layout(out):
            n = math.prod(shape)
            views[name] = vectors[:, offset:offset + n].view(len(vectors), *shape)
            offset += n
        return views

    def task_parameters(self, task: int) -> dict[str, torch.Tensor]:
        """Task `task`'s tensors by name (views into its vector), plus its BN running statistics."""
        params = {k: v[0] for k, v in self.unpack(self.vectors[task].unsqueeze(0), self.out_features[task]).items()}
        for i, spec in enumerate(self.specs):
            if spec.norm:
                params[f"running_mean{i}"] = self.norms[i].running_mean[task]
                params[f"running_var{i}"] = self.norms[i].running_var[task]
        return params

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation (uniform in +-1/sqrt(fan_in)) for every weight and bias; BN 1 and 0."""
        for task, vector in enumerate(self.vectors):
            for name, value in self.unpack(vector.unsqueeze(0), self.out_features[task]).items():
                if name.startswith("norm_"):
                    value.fill_(1.0 if name.startswith("norm_weight") else 0.0)
                else:
                    bound = 1 / math.sqrt(self.fan_in[name])
                    value.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, tasks: list[int], columns: torch.Tensor | None = None) -> list[torch.Tensor]:
        """x [G, B, F] (group g for task tasks[g]) -> one [B, out] output per task. `columns` [G, F']: x holds only
        these of the F features for each group (the rest are zero), so the first layer reads only their weights."""
        outputs: list[torch.Tensor | None] = [None] * len(tasks)
        for out, members in self._by_width(tasks):
            group = [tasks[m] for m in members]
            vectors = [self.vectors[t] for t in group]
            stacked = vectors[0].unsqueeze(0) if len(vectors) == 1 else torch.stack(vectors)
            h = x if len(members) == len(tasks) else x[members]
            p = self.unpack(stacked, out)
            if columns is not None:
                first = "weight0" if self.specs else "head_weight"
                kept = columns if len(members) == len(tasks) else columns[members]
                p[first] = p[first].gather(2, kept.unsqueeze(1).expand(-1, p[first].shape[1], -1))
            y = self.run(h, p, torch.tensor(group, device=x.device))
            for j, m in enumerate(members):
                outputs[m] = y[j]
        return outputs

    def _by_width(self, tasks: list[int]) -> list[tuple[int, list[int]]]:
        groups: dict[int, list[int]] = {}
        for position, task in enumerate(tasks):
            groups.setdefault(self.out_features[task], []).append(position)
        return list(groups.items())

    def run(self, h: torch.Tensor, p: dict[str, torch.Tensor], tasks: torch.Tensor) -> torch.Tensor:
        """h_{l+1} = drop(act(BN_t(W_t h_l + b_t))) per branch layer, then W_t h + b_t: [G, B, F] -> [G, B, out]."""
        for i, spec in enumerate(self.specs):
            h = torch.baddbmm(p[f"bias{i}"].unsqueeze(1), h, p[f"weight{i}"].transpose(1, 2))
            if spec.norm:
                h = self.batch_norm(h, i, p[f"norm_weight{i}"], p[f"norm_bias{i}"], tasks)
            h = self.drops[i](self.acts[i](h))
        return torch.baddbmm(p["head_bias"].unsqueeze(1), h, p["head_weight"].transpose(1, 2))

    def batch_norm(self, h: torch.Tensor, layer: int, weight: torch.Tensor, bias: torch.Tensor, tasks: torch.Tensor
                   ) -> torch.Tensor:
        """BN_t of h [G, B, F]: each task's group with its own statistics (BatchNorm1d semantics, running statistics
        per task) and its own scale and shift [G, F] (this op order, not forward_groups' fused one, keeps the
        numbers trained heads give)."""
        norm = self.norms[layer]
        mean, var = norm.group_statistics(h, tasks)
        scale = weight * torch.rsqrt(var + norm.eps)
        return (h - mean.unsqueeze(1)) * scale.unsqueeze(1) + bias.unsqueeze(1)
