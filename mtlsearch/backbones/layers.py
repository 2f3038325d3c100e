"""Layer specs shared by every backbone and strategy: one conv or linear unit with norm, activation and pool."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "none": nn.Identity}


@dataclass(frozen=True)
class LayerSpec:
    """One unit: conv/linear -> (batch) norm -> [routing point] -> activation -> pool / dropout."""

    type: str  # "conv" or "linear"
    width: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    norm: bool = True
    act: str = "relu"
    pool: int | str = 0  # 0: none, k: k x k max-pool, "global": average over all positions
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape given the per-sample input shape."""
        if self.type == "linear":
            return (self.width,)
        _, h, w = in_shape
        h = (h + 2 * self.padding - self.kernel) // self.stride + 1
        w = (w + 2 * self.padding - self.kernel) // self.stride + 1
        if self.pool == "global":
            return (self.width, 1, 1)
        if self.pool:
            h, w = h // self.pool, w // self.pool
        return (self.width, h, w)

    def fan_in(self, in_shape: tuple[int, ...]) -> int:
        """Weight columns per input unit: kernel taps for a conv, flattened positions for a linear layer."""
        if self.type == "conv":
            return 1
        return math.prod(in_shape[1:]) if len(in_shape) > 1 else 1


def fit_pools(specs: list[LayerSpec], in_shape: tuple[int, ...]) -> list[LayerSpec]:
    """Drop max-pools that would shrink a feature map below 1x1, so small inputs (8x8) work."""
    fitted, shape = [], tuple(in_shape)
    for spec in specs:
        if spec.type == "conv" and isinstance(spec.pool, int) and spec.pool:
            _, h, w = replace(spec, pool=0).out_shape(shape)
            if min(h, w) < spec.pool:
                spec = replace(spec, pool=0)
        fitted.append(spec)
        shape = spec.out_shape(shape)
    return fitted


def shapes(specs: list[LayerSpec], in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape after each spec."""
    out, shape = [], tuple(in_shape)
    for spec in specs:
        shape = spec.out_shape(shape)
        out.append(shape)
    return out


class Pool(nn.Module):
    """Max-pool by k, or average over all positions ("global")."""

    def __init__(self, pool: int | str):
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "global":
            return x.mean(dim=(2, 3), keepdim=True)
        return nn.functional.max_pool2d(x, self.pool) if self.pool else x


class Unit(nn.Module):
    """A backbone unit built from a LayerSpec; `route` is where a strategy inserts its layer (e.g. a TRL)."""

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...]):
        super().__init__()
        self.spec = spec
        if spec.type == "conv":
            self.op = nn.Conv2d(in_shape[0], spec.width, spec.kernel, spec.stride, spec.padding)
            self.norm = nn.BatchNorm2d(spec.width) if spec.norm else nn.Identity()
        else:
            self.op = nn.Linear(math.prod(in_shape), spec.width)
            self.norm = nn.BatchNorm1d(spec.width) if spec.norm else nn.Identity()
        self.route = nn.Identity()
        self.act = ACTIVATIONS[spec.act]()
        self.pool = Pool(spec.pool) if spec.type == "conv" else nn.Dropout(spec.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.type == "linear" and x.dim() > 2:
            x = x.flatten(1)
        return self.pool(self.act(self.route(self.norm(self.op(x)))))


def build_units(specs: list[LayerSpec], in_shape: tuple[int, ...]) -> nn.ModuleList:
    """One Unit per spec, chained by shape."""
    units, shape = nn.ModuleList(), tuple(in_shape)
    for spec in specs:
        units.append(Unit(spec, shape))
        shape = spec.out_shape(shape)
    return units
