"""Task Affinity Grouping (Fifty, Amid, Zhao, Yu, Anil, Finn, NeurIPS 2021): tasks whose steps help each other
share a trunk.

The paper's symbols, mapped once:
- theta_s, the shared parameters: the hard-sharing trunk (blocks used by more than one task); theta_j, task j's
  own: its branch and head (the backbone's `branch` layers and the output layer).
- the look-ahead theta_s|i^{t+1} = theta_s^t - eta grad_{theta_s} L_i: one plain SGD step with eta =
  `lookahead_lr`, taken in `torch.func.functional_call` (lookahead.py), never applied to the model.
- Z^t_{i->j} = 1 - L_j(X^t, theta_s|i^{t+1}, theta_j^t) / L_j(X^t, theta_s^t, theta_j^t) on one batch X^t; the
  affinity Z_{i->j} is its mean over the measurements, one every `affinity_every` optimiser steps.
- network selection: at most `groups` groups (selection.py); the final network is one trunk per group.
Choices the paper leaves open or makes differently, stated: X^t is a batch of `affinity_batch` training examples
the strategy draws with its own seeded generator (the trainer's batch and labels are not shown to strategies);
the two phases run in one training run, `switch_epoch` epochs of hard sharing measuring Z, then the chosen groups
each get a copy of the trained trunk and train on (the paper trains the chosen networks anew); groups are
disjoint (selection.py says why).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...backbones import Backbone
from ...errors import UserError
from ...structure.network import BlockNetwork
from ..base import EpochContext
from ..setting import Setting
from ..structured import StructuredStrategy
from ..groups import check_groups
from .grouping import lay_out, split_trunk
from .lookahead import LookAheadAffinity, sample_batch
from .pictures import plot_task_affinity
from .selection import choose_groups


class TaskAffinity(StructuredStrategy):
    name = "task_affinity"
    description = "hard sharing that measures look-ahead inter-task affinity, then one trunk per chosen task " \
                  "group (Fifty 2021)"
    settings = (
        Setting("groups", int, 4, "at most this many task groups, each with its own trunk, after the switch", low=1),
        Setting("switch_epoch", int, 5, "the epoch at whose end the groups are chosen; later epochs train one "
                "trunk per group (a run that ends before it stays hard sharing)", low=1),
        Setting("affinity_every", int, 10, "optimiser steps between look-ahead affinity measurements", low=1),
        Setting("lookahead_lr", float, 0.1, "learning rate of the look-ahead SGD step on the shared trunk",
                low=0.0, low_open=True),
        Setting("affinity_batch", int, 256, "training examples in each look-ahead measurement (more: less noise, "
                "the cost grows in proportion)", low=1),
    )

    def __init__(self, problem, config=None, seed=0):
        super().__init__(problem, config, seed)
        self.lookahead = LookAheadAffinity(problem, self.config["lookahead_lr"])
        self.layout = [list(problem.task_names)]  # the groups the model is built with
        self.groups: list[list[str]] | None = None  # the chosen groups, once switched
        n = len(problem.tasks)
        self.total, self.epoch_total = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
        self.count = self.epoch_count = 0
        self.epoch_lookahead_seconds = 0.0
        self.history: list[dict] = []
        self.generator = torch.Generator().manual_seed(self.seed)
        self._backbone: Backbone | None = None

    def validate(self):
        """Grouping needs at least two tasks."""
        if len(self.problem.tasks) < 2:
            raise UserError(f"task_affinity groups tasks, so it needs at least 2; problem {self.problem.name!r} has "
                            f"{len(self.problem.tasks)} ({', '.join(self.problem.task_names)})")

    # model
    def make_structure(self, backbone: Backbone, groups: list[list[str]] | None = None):
        structure = self.new_structure(backbone)
        lay_out(structure, self.problem, backbone, groups or self.layout)
        return structure

    def build(self, backbone: Backbone, state: dict | None = None) -> BlockNetwork:
        """state None: hard sharing (one group of every task); else the groups `state` records."""
        self._backbone = backbone
        if state is not None:
            if not isinstance(state, dict) or "groups" not in state:
                raise UserError(f"task_affinity architecture state must be {{'groups': [...]}}, got {state!r}")
            self.layout = check_groups(state["groups"], self.problem.task_names, self.name)
        return BlockNetwork(self.make_structure(backbone))

    def architecture_state(self) -> dict:
        return {"groups": [list(g) for g in self.layout]}

    def state_dict(self) -> dict:
        """The measurements so far, the chosen groups and the look-ahead batches' generator."""
        return {"total": self.total, "count": self.count, "epoch_total": self.epoch_total,
                "epoch_count": self.epoch_count, "history": self.history, "layout": self.layout,
                "groups": self.groups, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.count = state["total"].clone(), state["count"]
        self.epoch_total, self.epoch_count = state["epoch_total"].clone(), state["epoch_count"]
        self.history = list(state["history"])
        self.layout = check_groups(state["layout"], self.problem.task_names, self.name)
        self.groups = None if state["groups"] is None else [list(g) for g in state["groups"]]
        self.generator.set_state(state["generator"])

    # training hooks
    @property
    def measuring(self) -> bool:
        return self.groups is None

    def measure(self, model: nn.Module) -> None:
        """One look-ahead measurement of Z on a fresh batch, added to the running sums (skipped if not finite)."""
        started = time.perf_counter()
        device = next(model.parameters()).device
        x, y = sample_batch(self.problem.train, self.config["affinity_batch"], self.generator, device)
        was_training = model.training
        model.train()
        z = self.lookahead(model, x, y).double().cpu()
        model.train(was_training)
        if torch.isfinite(z).all():
            self.total += z
            self.epoch_total += z
            self.count += 1
            self.epoch_count += 1
        self.epoch_lookahead_seconds += time.perf_counter() - started

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.measuring and step % self.config["affinity_every"] == 0:
            self.measure(model)

    def end_epoch(self, context: EpochContext) -> nn.Module | None:
        epoch = context.epoch + 1
        new_model, switched = None, False
        if self.measuring and epoch >= self.config["switch_epoch"]:
            if self.count == 0:  # fewer steps than `affinity_every`: measure once now
                self.measure(context.model)
            new_model, switched = self._switch(context.model), True
        record = {"epoch": epoch, "measurements": self.epoch_count,
                  "lookahead_seconds": round(self.epoch_lookahead_seconds, 5),
                  "epoch_seconds": round(context.epoch_seconds, 5)}
        if self.epoch_count:
            record["affinity"] = (self.epoch_total / self.epoch_count).tolist()
        if switched:
            record["groups"] = [list(g) for g in self.groups]
        self.history.append(record)
        context.log.update({"groups": [list(g) for g in self.layout], "affinity_measurements": self.count})
        self.epoch_total.zero_()
        self.epoch_count, self.epoch_lookahead_seconds = 0, 0.0
        return new_model

    def _switch(self, model: BlockNetwork) -> BlockNetwork | None:
        """Choose the groups from the mean affinity; a new model with one trunk per group (None: still one)."""
        names = self.problem.task_names
        chosen = choose_groups(self.affinity(), self.config["groups"])
        self.groups = [[names[i] for i in g] for g in chosen]
        if len(self.groups) == 1:
            return None
        self.layout = check_groups(self.groups, names, self.name)
        grouped = BlockNetwork(self.make_structure(self._backbone))
        split_trunk(model, grouped, self.layout, self._backbone)
        return grouped

    def affinity(self) -> np.ndarray:
        """The mean Z over every measurement so far (zeros before the first)."""
        return (self.total / max(self.count, 1)).numpy()

    # results
    def report(self) -> dict:
        return {"task_affinity": self.affinity().tolist(), "affinity_tasks": self.problem.task_names,
                "affinity_measurements": self.count, "final_groups": self.groups, "affinity_history": self.history}

    def artifacts(self, model: nn.Module, out_dir) -> list[str]:
        if not self.count:
            return []
        index = {t: i for i, t in enumerate(self.problem.task_names)}
        groups = [[index[t] for t in g] for g in self.groups] if self.groups else None
        chosen = "groups not chosen yet" if groups is None else f"{len(groups)} groups chosen"
        title = (f"Look-ahead task affinity, mean of {self.count} measurements (lookahead_lr="
                 f"{self.config['lookahead_lr']}); {chosen}")
        plot_task_affinity(self.affinity(), self.problem.task_names, groups, Path(out_dir) / "task_affinity.png",
                           title)
        return ["task_affinity.png"]
