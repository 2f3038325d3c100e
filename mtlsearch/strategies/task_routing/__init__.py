"""Task Routing (Strezoski, van Noord, Worring, ICCV 2019): fixed per-task channel masks, sharing ratio sigma.

Paper -> code: the Task Routing Layer (TRL) is `TaskRoutingLayer`, placed in every conv unit's `route` slot
(conv -> BN -> TRL -> activation; `route_linear` also routes the trunk's linear layers, and a trunk without convs
routes its linear layers). The TRL's mask for the active task A is row A of the layer's [T, C] buffer `masks`;
sigma (the sharing ratio) is `sigma`, one number or one per routed layer (the paper's "sigma = Adapt").
Algorithm 1 (sample A uniformly, set_active_task(A), forward) is `task_sampling="one"`; `"all"` trains every
task on every batch in one pass with the tasks folded into the batch dimension; evaluation runs all tasks so.
Mask modes: `partition` (paper semantics: round(sigma*C) channels shared, the rest dealt to the tasks; sigma=1
is hard sharing, sigma=0 disjoint sub-networks) and `knockout` (the published code: floor(sigma*C) zeros per
task, independent per task and layer, so there sigma is the share dropped and sigma=0 is hard sharing).
The paper leaves open what follows the routed trunk: here, as in hard sharing, each task's own branch layers and
output layer (`TaskHeads`, one parameter vector per task, so 312 tasks cost only their heads). Trunk BN keeps
running statistics per task (`TaskBalancedBatchNorm`): past the first TRL each task feeds a layer its own
activations, and one running average (the last tasks drawn, or a mixture of all) fits none of them: sigma=0 on
multidigits scored 0.47-0.59 with it and 0.85-0.87 with per-task statistics (3 seeds, 6 epochs).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..base import Strategy
from ..setting import Setting
from .masks import MASK_MODES, TaskRoutingLayer, make_masks
from .model import TaskRoutedNetwork
from .structure import routed_structure

TASK_SAMPLING = ("one", "all")


class TaskRouting(Strategy):
    name = "task_routing"
    description = "fixed per-task channel masks after every conv, sharing ratio sigma (Strezoski et al. 2019)"
    settings = (
        Setting("sigma", float, 0.5, "sharing ratio: share of channels every task uses (partition) or drops (knockout)",
                low=0.0, high=1.0, per_layer="routed layer"),
        Setting("mask_mode", str, "partition", "partition: the paper's shared and dealt channels; knockout: the "
                "published code's random zeros", choices=MASK_MODES),
        Setting("task_sampling", str, "one", "one: a random task per batch (Algorithm 1); all: every task every "
                "batch", choices=TASK_SAMPLING),
        Setting("route_linear", bool, False, "also mask the trunk's linear layers"),
    )

    def routed_units(self, backbone) -> list[int]:
        """Trunk units that get a TRL: the convs, plus the linear layers if asked or if there is no conv."""
        convs = [i for i, spec in enumerate(backbone.trunk) if spec.type == "conv"]
        if self.config["route_linear"] or not convs:
            return list(range(len(backbone.trunk)))
        return convs

    def sigmas(self, backbone) -> list[float]:
        """sigma per routed layer; a list must have one value per routed layer."""
        units, sigma = self.routed_units(backbone), self.config["sigma"]
        if not isinstance(sigma, (list, tuple)):
            return [float(sigma)] * len(units)
        if len(sigma) != len(units):
            kinds = ", ".join(f"{backbone.trunk[i].type} {i + 1}" for i in units)
            raise ConfigError(f"sigma has {len(sigma)} values but backbone {backbone.name} has {len(units)} routed "
                              f"layers ({kinds}); give one number or {len(units)}")
        return [float(v) for v in sigma]

    def build(self, backbone, state=None) -> TaskRoutedNetwork:
        units, sigmas = self.routed_units(backbone), self.sigmas(backbone)
        widths = [backbone.trunk[i].width for i in units]
        masks = make_masks(self.config["mask_mode"], len(self.problem.tasks), widths, sigmas, self.seed)
        self._summary = summarize(units, masks, sigmas)
        return TaskRoutedNetwork(backbone, self.problem.tasks, dict(zip(units, masks)))

    def batch_tasks(self, rng: np.random.Generator) -> list[str] | None:
        """Algorithm 1: one task drawn uniformly per batch; None (every task) with task_sampling=all."""
        if self.config["task_sampling"] == "all":
            return None
        names = self.problem.task_names
        return [names[int(rng.integers(len(names)))]]

    def structure(self, model: TaskRoutedNetwork):
        return routed_structure(model, self.name, self.config, self.problem.tasks)

    def report(self) -> dict:
        return {"routing": getattr(self, "_summary", {})}

    def artifacts(self, model: TaskRoutedNetwork, out_dir) -> list[str]:
        from .picture import draw_masks  # matplotlib only when pictures are written

        masks = {unit: layer.masks.cpu().numpy() for unit, layer in model.routing_layers().items()}
        draw_masks(masks, model.task_names, Path(out_dir) / "routing_masks.png")
        return ["routing_masks.png"]


def summarize(units: list[int], masks: list[np.ndarray], sigmas: list[float]) -> dict:
    """Per routed layer: channels, sigma, channels used by every task, and the range of channels a task uses."""
    layers = []
    for unit, mask, sigma in zip(units, masks, sigmas):
        per_task = mask.sum(1)
        layers.append({"layer": unit + 1, "channels": int(mask.shape[1]), "sigma": sigma,
                       "shared": int((mask.min(0) > 0).sum()), "task_channels_min": int(per_task.min()),
                       "task_channels_max": int(per_task.max()), "unused": int((mask.max(0) == 0).sum())})
    return {"layers": layers, "active_fraction": float(np.mean([m.mean() for m in masks])) if masks else math.nan}


__all__ = ["TaskRouting", "TaskRoutingLayer", "TaskRoutedNetwork", "make_masks", "routed_structure"]
