"""Backbones as lists of LayerSpecs: a shared `trunk` and the per-task `branch` layers before each output.

Every strategy reads the same specs, so a layer can be inserted after any conv (Task Routing) or a conv
replaced by a grouped one (SFG) without knowing which backbone it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import choice_error
from .layers import LayerSpec, Pool, Unit, build_layer, build_units, fit_pools, shapes

# VGG configurations A (VGG-11) and D (VGG-16) of Simonyan & Zisserman (2015), table 1, as torchvision lists them:
# conv widths, "M" a 2x2 max-pool. Written out so that importing a backbone does not import torchvision (2 s).
VGG_CONFIGS = {"A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
               "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]}


@dataclass(frozen=True)
class Backbone:
    """A trunk (shared in hard sharing) and branch layers (one copy per task), for a given input shape."""

    name: str
    input_shape: tuple[int, ...]
    trunk: list[LayerSpec]
    branch: list[LayerSpec] = field(default_factory=list)

    @property
    def trunk_shape(self) -> tuple[int, ...]:
        return shapes(self.trunk, self.input_shape)[-1] if self.trunk else tuple(self.input_shape)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape that each task's output layer reads."""
        return shapes(self.branch, self.trunk_shape)[-1] if self.branch else self.trunk_shape


def cnn(input_shape) -> Backbone:
    """Selective Sharing's MNIST network: conv 20@5x5, conv 40@5x5 (BN, pool), FC 640; branches 100 -> 50."""
    pad = 2 if min(input_shape[1:]) < 20 else 0
    trunk = [LayerSpec("conv", 20, 5, 1, pad, pool=2), LayerSpec("conv", 40, 5, 1, pad, pool=2),
             LayerSpec("linear", 640)]
    return Backbone("cnn", tuple(input_shape), fit_pools(trunk, input_shape),
                    [LayerSpec("linear", 100), LayerSpec("linear", 50)])


def _vgg(name: str, config: str, input_shape) -> Backbone:
    """VGG with BN, as torchvision builds it; global average pool and FC 512 replace the 4096-wide head."""
    trunk: list[LayerSpec] = []
    for item in VGG_CONFIGS[config]:
        if item == "M":
            trunk[-1] = LayerSpec("conv", trunk[-1].width, 3, 1, 1, pool=2)
        else:
            trunk.append(LayerSpec("conv", int(item), 3, 1, 1))
    trunk = fit_pools(trunk, input_shape)
    trunk[-1] = LayerSpec("conv", trunk[-1].width, 3, 1, 1, pool="global")
    trunk.append(LayerSpec("linear", 512))
    return Backbone(name, tuple(input_shape), trunk, [LayerSpec("linear", 256)])


def vgg11(input_shape) -> Backbone:
    return _vgg("vgg11", "A", input_shape)


def vgg16(input_shape) -> Backbone:
    return _vgg("vgg16", "D", input_shape)


def mlp(input_shape) -> Backbone:
    """Two hidden layers of 256 and 128 units for vector (or flattened) inputs; branches of 64."""
    return Backbone("mlp", tuple(input_shape), [LayerSpec("linear", 256), LayerSpec("linear", 128)],
                    [LayerSpec("linear", 64)])


BACKBONES = {"cnn": cnn, "vgg11": vgg11, "vgg16": vgg16, "mlp": mlp}


def default_backbone(input_shape) -> str:
    return "cnn" if len(input_shape) == 3 else "mlp"


def get_backbone(name: str | None, input_shape) -> Backbone:
    """A backbone by name (None: the CNN for images, the MLP for vectors)."""
    name = name or default_backbone(input_shape)
    if name not in BACKBONES:
        raise choice_error("backbone", name, BACKBONES)
    if name != "mlp" and len(input_shape) != 3:
        raise choice_error(f"backbone for {len(input_shape)}-d inputs", name, ["mlp"])
    return BACKBONES[name](tuple(input_shape))


__all__ = ["Backbone", "LayerSpec", "Pool", "Unit", "build_layer", "build_units", "shapes", "get_backbone",
           "BACKBONES"]
