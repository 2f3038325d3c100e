"""SFGNetwork: the backbone's trunk as grouped layers over T + 1 streams, then each task's branch and head.

Conv and linear trunk layers alike become grouped layers (a linear unit is a kernel over the flattened input).
Between trunk layers the streams are mixed (StreamMix); after the top trunk layer task t's branch reads
y_t + y_0: a learned mix there would be a second linear map in a row with the branch's own first layer.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ...backbones import Backbone, build_units
from ...errors import ConfigError
from ...problems.tasks import Task
from .calibration import Calibrator, batch_norms, load_statistics
from .layers import GroupedLayer, KernelGroups, StreamMix, keep_assigned


class SFGNetwork(nn.Module):
    """forward(x, tasks=None) -> {task: output}. Training samples an allocation per pass (or per example);
    evaluation uses the argmax allocation or a Monte Carlo vote over `mc_samples` sampled allocations."""

    def __init__(self, backbone: Backbone, tasks: list[Task], config: dict, seed: int = 0):
        super().__init__()
        if not backbone.trunk:
            raise ConfigError(f"sfg needs a backbone with trunk layers; {backbone.name} has none")
        self.backbone_name = backbone.name
        self.tasks = list(tasks)
        self.task_names = [t.name for t in tasks]
        self.group_names = ["shared", *self.task_names]
        self.index = {name: i for i, name in enumerate(self.task_names)}
        groups = len(tasks) + 1
        init = torch.Generator().manual_seed(seed)
        self.layers, self.mixes = nn.ModuleList(), nn.ModuleList()
        shape = tuple(backbone.input_shape)
        self.shapes = []  # output shape of every trunk layer
        for i, spec in enumerate(backbone.trunk):
            probabilities = KernelGroups(spec.width, groups, config["p_normalise"], config["p_init"], init,
                                         config["p_lr_scale"])
            self.layers.append(GroupedLayer(spec, shape, groups, i == 0, probabilities))
            shape = spec.out_shape(shape)
            self.shapes.append(shape)
            if i < len(backbone.trunk) - 1:
                self.mixes.append(StreamMix(spec.width, len(tasks), config["combine"]))
        self.branches = nn.ModuleList(build_units(backbone.branch, shape) for _ in tasks)
        feature = math.prod(backbone.feature_shape)
        self.heads = nn.ModuleList(nn.Linear(feature, t.out_features) for t in tasks)
        self.tau = float(config["tau0"])
        self.hard = bool(config["straight_through"])
        self.per_example = bool(config["sample_per_example"])
        self.inference = config["inference"]
        self.mc_samples = int(config["mc_samples"])
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.calibrator = Calibrator(int(config["calibration_batches"]))
        self.stale = False
        self.mc_statistics: list = []
        self.argmax_statistics: list = []

    # the allocation
    def probabilities(self) -> list[torch.Tensor]:
        """p of every trunk layer, [C_l, T + 1] each (column 0 the shared group)."""
        return [layer.probabilities() for layer in self.layers]

    def entropy(self) -> torch.Tensor:
        """sum over layers of the mean kernel entropy of p."""
        return sum(layer.probabilities.entropy() for layer in self.layers)

    def kernel_weights(self) -> list[torch.Tensor]:
        """The grouped layers' kernels M^{(l)} (what the lambda1 penalty regularises)."""
        return [layer.op.weight for layer in self.layers]

    def sample_masks(self, batch: int | None, generator: torch.Generator, hard: bool | None = None) -> list:
        hard = self.hard if hard is None else hard
        return [layer.probabilities.sample(self.tau, hard, batch, generator) for layer in self.layers]

    def argmax_masks(self) -> list[torch.Tensor]:
        return [layer.probabilities.argmax() for layer in self.layers]

    # running
    def forward(self, x: torch.Tensor, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        tasks = list(self.task_names if tasks is None else tasks)
        if self.training:
            self.calibrator.remember(x)
            self.stale = True
            return self.run(x, tasks, self.sample_masks(len(x) if self.per_example else None, self.generator))
        if self.inference == "argmax":
            return self.run(x, tasks, self.argmax_masks())
        runs = []
        for i, masks in enumerate(self.mc_allocations()):
            if self.mc_statistics:
                load_statistics(batch_norms(self), self.mc_statistics[i])
            runs.append(self.run(x, tasks, masks))
        if self.mc_statistics:
            load_statistics(batch_norms(self), self.argmax_statistics)
        return {t: monte_carlo(self.tasks[self.index[t]], [r[t] for r in runs]) for t in tasks}

    def mc_allocations(self) -> list[list[torch.Tensor]]:
        """The `mc_samples` allocations of Monte Carlo inference: the same sampled networks for every batch."""
        generator = torch.Generator().manual_seed(self.seed)
        return [self.sample_masks(None, generator, hard=True) for _ in range(self.mc_samples)]

    def train(self, mode: bool = True):
        """Entering evaluation after training steps recomputes the BN statistics for the evaluated allocations."""
        if not mode and self.stale and self.calibrator.ready:
            was_training = self.training
            super().train(True)
            self._calibrate()
            super().train(was_training)
        return super().train(mode)

    def _calibrate(self) -> None:
        """BN statistics for each Monte Carlo allocation (if used), then for the argmax one, left in place."""
        def allocation(masks):
            return lambda x: self.run(x, self.task_names, masks)
        self.mc_statistics = [self.calibrator.calibrate(self, allocation(masks)) for masks in self.mc_allocations()] \
            if self.inference == "mc" else []
        self.argmax_statistics = self.calibrator.calibrate(self, allocation(self.argmax_masks()))
        self.stale = False

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.stale, self.mc_statistics = True, []  # statistics of other weights: recalibrate before evaluating
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def get_extra_state(self) -> dict:
        """Saved with the weights (so a checkpoint resumes and evaluates as it was): the temperature, the
        sampling generator and the Monte Carlo networks' BN statistics."""
        return {"tau": self.tau, "noise": self.generator.get_state(), "mc_statistics": self.mc_statistics}

    def set_extra_state(self, state: dict) -> None:
        self.tau = float(state["tau"])
        self.generator.set_state(state["noise"])
        self.mc_statistics = [[(mean.clone(), var.clone()) for mean, var in stats] for stats in state["mc_statistics"]]

    def run(self, x: torch.Tensor, tasks: list[str], masks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs for one allocation `masks` (z per trunk layer)."""
        streams = x
        for layer, mix, z in zip(self.layers[:-1], self.mixes, masks):
            streams = mix(layer(streams), z)
        shared, own = keep_assigned(self.layers[-1](streams), masks[-1]).split([1, len(self.tasks)], 1)
        task_streams = own + shared
        out = {}
        for task in tasks:
            i = self.index[task]
            h = task_streams[:, i]
            for unit in self.branches[i]:
                h = unit(h)
            out[task] = self.heads[i](h.flatten(1))
        return out


def monte_carlo(task: Task, outputs: list[torch.Tensor]) -> torch.Tensor:
    """Combine sampled outputs: the mean for regression; for classification the smoothed log vote share,
    whose sign (binary) or argmax (multiclass) is the mode of the votes (ties: negative class, lowest index)."""
    stacked = torch.stack(outputs)
    n = len(outputs)
    if task.type == "regression":
        return stacked.mean(0)
    if task.type == "binary":
        positive = (stacked > 0).sum(0).to(stacked.dtype)
        return torch.log((positive + 0.5) / (n - positive + 0.5))
    votes = nn.functional.one_hot(stacked.argmax(-1), stacked.shape[-1]).sum(0).to(stacked.dtype)
    return torch.log((votes + 0.5) / (n + 0.5 * stacked.shape[-1]))
