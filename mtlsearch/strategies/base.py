"""The one interface every architecture-learning strategy implements; the trainer knows no strategy by name."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..backbones import Backbone, get_backbone
from ..errors import ConfigError
from ..problems import Problem
from ..structure.graph import SharingStructure
from .setting import Setting, check_settings


@dataclass
class EpochContext:
    """What a strategy may look at when an epoch ends."""

    epoch: int
    model: nn.Module
    train_losses: dict[str, float]
    val: dict[str, Any]
    epoch_seconds: float
    log: dict = field(default_factory=dict)


class Strategy(ABC):
    """Builds a multi-task model from a problem and a config, shapes its training, reports its structure.

    Models take `forward(x, tasks=None)` and return `{task_name: output}` for the requested tasks.
    Each setting is declared once in `settings`; rules between settings go in `validate`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[tuple[Setting, ...]] = ()

    def __init__(self, problem: Problem, config: dict | None = None, seed: int = 0):
        self.problem = problem
        self.seed = int(seed)
        defaults = self.defaults()
        self.config = {**defaults, **(config or {})}
        unknown = sorted(set(self.config) - set(defaults))
        if unknown:
            raise ConfigError(f"unknown {self.name} setting(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(defaults)) or '(none)'}")
        check_settings(self.settings, self.config)
        self.validate()

    # configuration
    @classmethod
    def defaults(cls) -> dict:
        """Every setting's default, in declaration order (the order of `config` and of what is written)."""
        return {s.name: s.default for s in cls.settings}

    def validate(self) -> None:
        """Rules no single declaration states (e.g. between settings); raise ConfigError naming what is valid."""

    def backbone(self, backbone_name: str | None) -> Backbone:
        """The named backbone, else the problem's own layers, else the default for its input shape."""
        if backbone_name is None and self.problem.backbone is not None:
            return self.problem.backbone
        return get_backbone(backbone_name, self.problem.input_shape)

    # model
    @abstractmethod
    def build(self, backbone: Backbone, state: dict | None = None) -> nn.Module:
        """A fresh model; `state` (from `architecture_state`) rebuilds a changed architecture."""

    def architecture_state(self) -> dict | None:
        """JSON-able state that fixes the architecture, for strategies that change it while training."""
        return None

    def state_dict(self) -> dict:
        """Training-time state beyond the model (e.g. accumulated statistics), for checkpoint and resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""

    # training hooks
    def batch_tasks(self, rng: np.random.Generator) -> list[str] | None:
        """Tasks to train on the next batch (None: all)."""
        return None

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """Regularisers added to the data terms."""
        return None

    def before_step(self, model: nn.Module) -> bool:
        """Look at the gradients before the optimiser step (e.g. capture them); False skips the batch."""
        return True

    def after_step(self, model: nn.Module, step: int) -> None:
        """Schedules (e.g. temperature) after each optimiser step."""

    def end_epoch(self, context: EpochContext) -> nn.Module | None:
        """Per-epoch discovery (e.g. clustering); return a new model when the architecture changed."""
        return None

    # results
    @abstractmethod
    def structure(self, model: nn.Module) -> tuple[SharingStructure, dict[str, torch.Tensor]]:
        """The discovered sharing structure and the weights that make `freeze` reproduce `model`."""

    def report(self) -> dict:
        """Extra results for metrics.json (e.g. a merge history)."""
        return {}

    def artifacts(self, model: nn.Module, out_dir) -> list[str]:
        """Write pictures of what the strategy learned; return the file names."""
        return []

