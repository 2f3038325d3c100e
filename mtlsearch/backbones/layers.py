"""Layer specs shared by every backbone and strategy: one conv or linear unit with norm, activation and pool."""
from __future__ import annotations

import math
from collections.abc import Callable
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

    @classmethod
    def from_op(cls, op: dict, width: int) -> LayerSpec:
        """The spec of a structure block's op (a spec's fields but its width); unset fields mean no norm, relu and
        no pool or dropout."""
        return cls(op["type"], width, op.get("kernel", 3), op.get("stride", 1), op.get("padding", 1),
                   bool(op.get("norm")), op.get("act", "relu"), op.get("pool", 0), op.get("dropout", 0.0))

    def in_features(self, in_shape: tuple[int, ...]) -> int:
        """What the op reads per sample: input channels for a conv, flattened input units for a linear layer."""
        return in_shape[0] if self.type == "conv" else math.prod(in_shape)

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

    def multiply_adds(self, in_shape: tuple[int, ...]) -> int:
        """Multiply-adds per sample of the op: each output unit (before pooling) times the inputs it weighs."""
        if self.type == "linear":
            return self.width * math.prod(in_shape)
        _, h, w = replace(self, pool=0).out_shape(in_shape)
        return self.width * in_shape[0] * self.kernel ** 2 * h * w

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


NormLayer = Callable[[int], nn.Module]


def build_layer(spec: LayerSpec, in_features: int, norm_layer: NormLayer | None = None
                ) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(op, norm, act, post) of one spec: Conv2d or Linear (PyTorch's default init), norm_layer(width) (default
    BatchNorm2d / BatchNorm1d; Identity without norm), the activation, then pool (conv) or dropout (linear)."""
    if spec.type == "conv":
        op = nn.Conv2d(in_features, spec.width, spec.kernel, spec.stride, spec.padding)
        default_norm, post = nn.BatchNorm2d, Pool(spec.pool)
    else:
        op = nn.Linear(in_features, spec.width)
        default_norm, post = nn.BatchNorm1d, nn.Dropout(spec.dropout)
    norm = (norm_layer or default_norm)(spec.width) if spec.norm else nn.Identity()
    return op, norm, ACTIVATIONS[spec.act](), post


class Unit(nn.Module):
    """A backbone unit built from a LayerSpec; `route` is where a strategy inserts its layer (e.g. a TRL)."""

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...], norm_layer: NormLayer | None = None):
        super().__init__()
        self.spec = spec
        op, norm, act, post = build_layer(spec, spec.in_features(in_shape), norm_layer)
        self.op, self.norm, self.route, self.act, self.post = op, norm, nn.Identity(), act, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.type == "linear" and x.dim() > 2:
            x = x.flatten(1)
        return self.post(self.act(self.route(self.norm(self.op(x)))))


def build_units(specs: list[LayerSpec], in_shape: tuple[int, ...], norm_layer: NormLayer | None = None
                ) -> nn.ModuleList:
    """One Unit per spec, chained by shape; `norm_layer(width)` builds their norms (default: BatchNorm)."""
    units, shape = nn.ModuleList(), tuple(in_shape)
    for spec in specs:
        units.append(Unit(spec, shape, norm_layer))
        shape = spec.out_shape(shape)
    return units
