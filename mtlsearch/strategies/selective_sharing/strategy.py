"""Selective Sharing (Strezoski, van Noord, Worring, ICMR 2019): branches of tasks whose gradients agree merge.

The paper's symbols, mapped once:
- T tasks t with losses L_t; the feature extractor and the hard-shared layer l are the backbone's `trunk`;
  each identical task-specific estimator (same layers, same initial weights) is a branch: the backbone's
  `branch` layers, node `<first task>_branch<k>` of kind "branch", followed by each task's head.
- the captured gradient dL_t/dW^(l+1) of the branch's first layer is `blocks.<branch>.weight.grad`, averaged
  over the epoch's batches (capture.BranchGradients; the paper stacks the per-batch gradients instead); a merged
  branch carries the gradient of its group's summed loss.
- the Tensor-Train factors and the per-task factor matrices F_t (eq. 5) are factors.task_factors: one TT of
  the stacked gradients with the branch index first, read as one unit-length vector f_b per branch.
- HDBSCAN's mutual reachability distance (eq. 6) with core distance to the k-th neighbour: the hdbscan
  package with k = `min_samples`; the sharing directive (criterion) is one of criteria.CRITERIA.
- the lock epoch: the epoch after which clustering stops (every task in a group of two or more, or
  `patience` clustering epochs without a change).
Choices the paper leaves open are stated where they are made (criteria, factors, capture, merging).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from torch import nn

from ...backbones import Backbone
from ...errors import ConfigError, UserError
from ...structure.network import BlockNetwork, module_key
from ..base import EpochContext
from ..setting import Setting
from ..structured import StructuredStrategy
from .capture import BranchGradients, gradients_finite
from .criteria import CRITERIA, groups_of
from .factors import task_factors
from .history import plot_merge_history
from .merging import (MERGE_RULES, branch_nodes, carry_weights, check_groups, lay_out, merge_groups,
                      tie_initial_weights)


class SelectiveSharing(StructuredStrategy):
    name = "selective_sharing"
    description = "identical per-task branches merged by HDBSCAN on Tensor-Train gradient factors (Strezoski 2019)"
    settings = (
        Setting("criterion", str, "similarity", "which branches merge: the sharing directive (criteria.py)",
                choices=tuple(CRITERIA)),
        Setting("tt_rank", int, 8, "rank of the Tensor-Train decomposition of the stacked branch gradients", low=1),
        Setting("min_cluster_size", int, 2, "HDBSCAN's smallest group of branches", low=2),
        Setting("min_samples", int, 1, "HDBSCAN's core-distance neighbour (1: mutual reachability is the distance)",
                low=1),
        Setting("start_epoch", int, 1, "first epoch at whose end the branches are clustered", low=1),
        Setting("patience", int, 3, "clustering epochs without a change before the structure locks", low=1),
        Setting("merge", str, "lowest_loss", "merged weights: the branch with the lowest loss, or elementwise "
                "mean, max or min", choices=MERGE_RULES),
    )

    def __init__(self, problem, config=None, seed=0):
        super().__init__(problem, config, seed)
        self.groups = [[name] for name in problem.task_names]
        self.history: list[dict] = []
        self.lock_epoch: int | None = None
        self.epoch = 1
        self.quiet_epochs = 0
        self.skipped = 0
        self.start: dict = {}  # branches and parameters of the model built before training
        self._backbone: Backbone | None = None
        self._capture: BranchGradients | None = None

    def validate(self):
        """Grouping needs at least two tasks."""
        if len(self.problem.tasks) < 2:
            names = ", ".join(self.problem.task_names)
            raise UserError(f"selective_sharing groups tasks, so it needs at least 2; problem "
                            f"{self.problem.name!r} has {len(self.problem.tasks)} ({names})")

    # model
    def make_structure(self, backbone: Backbone, groups: list[list[str]] | None = None):
        if not backbone.branch:
            raise ConfigError(f"selective_sharing needs a backbone with branch layers; {backbone.name} has none")
        structure = self.new_structure(backbone)
        lay_out(structure, self.problem, backbone, groups or self.groups)
        return structure

    def build(self, backbone: Backbone, state: dict | None = None) -> BlockNetwork:
        """state None: the current grouping with identical branches; else the grouping `state` records, which
        the strategy adopts (a restored or exported model goes on from its merges)."""
        self._backbone = backbone
        if state is not None:
            if not isinstance(state, dict) or "groups" not in state:
                raise UserError(f"selective_sharing architecture state must be {{'groups': [...]}}, got {state!r}")
            self.groups = check_groups(state["groups"], self.problem.task_names)
            self._capture = self._new_capture()
            return BlockNetwork(self.make_structure(backbone))
        model = BlockNetwork(self.make_structure(backbone))
        tie_initial_weights(model, self.groups, backbone)
        self._capture = self._new_capture()
        self.start = {"branches": len(self.groups), "params": sum(p.numel() for p in model.parameters())}
        self._warm_up()
        return model

    def _warm_up(self) -> None:
        """Pay the libraries' one-off set-up (BLAS pool scan, input checks) now, not inside the first epoch."""
        factors = task_factors(np.random.default_rng(self.seed).standard_normal((4, 3, 2)), 2, self.seed)
        CRITERIA[self.config["criterion"]](factors, min_cluster_size=2, min_samples=1, rng=np.random.default_rng(0))

    def architecture_state(self) -> dict:
        return {"groups": [list(g) for g in self.groups]}

    def state_dict(self) -> dict:
        """The discovery's progress: groups, merge history, epoch counter, lock epoch and quiet epochs."""
        return {"groups": [list(g) for g in self.groups], "history": self.history, "lock_epoch": self.lock_epoch,
                "epoch": self.epoch, "quiet_epochs": self.quiet_epochs, "skipped": self.skipped, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        """Go on from `state_dict()`: gradients are captured for the restored branches from the next batch on."""
        self.groups = check_groups(state["groups"], self.problem.task_names)
        self.history, self.lock_epoch, self.epoch = list(state["history"]), state["lock_epoch"], state["epoch"]
        self.quiet_epochs, self.skipped, self.start = state["quiet_epochs"], state["skipped"], dict(state["start"])
        self._capture = self._new_capture()

    # training hooks
    @property
    def clustering(self) -> bool:
        return self.lock_epoch is None and self.epoch >= self.config["start_epoch"]

    def _new_capture(self) -> BranchGradients:
        return BranchGradients([module_key(branch_nodes(g, self._backbone)[0]) for g in self.groups])

    def before_step(self, model: nn.Module) -> bool:
        if not gradients_finite(model):
            self.skipped += 1
            warnings.warn(f"selective_sharing: non-finite gradient in epoch {self.epoch}; batch skipped "
                          f"({self.skipped} this epoch)", RuntimeWarning, stacklevel=2)
            return False
        if self.clustering and self._capture is not None:
            self._capture.add(model)
        return True

    def end_epoch(self, context: EpochContext) -> nn.Module | None:
        record = {"epoch": self.epoch, "clustered": False, "merged": [], "analysis_seconds": 0.0,
                  "epoch_seconds": round(context.epoch_seconds, 4), "skipped_batches": self.skipped}
        new_model = None
        if self.clustering and self._capture is not None and self._capture.batches:
            new_model = self._cluster(context, record)
        model = new_model if new_model is not None else context.model
        record.update(groups=[list(g) for g in self.groups], branches=len(self.groups),
                      params=sum(p.numel() for p in model.parameters()), locked=self.lock_epoch is not None)
        self.history.append(record)
        context.log.update({"branches": len(self.groups), "groups": record["groups"], "merged": record["merged"]})
        self.epoch += 1
        self.skipped = 0
        self._capture = self._new_capture()
        return new_model

    def _cluster(self, context: EpochContext, record: dict) -> BlockNetwork | None:
        """Factorise, cluster, merge; count quiet epochs and decide the lock epoch."""
        started = time.perf_counter()
        factors = task_factors(self._capture.mean(), self.config["tt_rank"], self.seed)
        labels = CRITERIA[self.config["criterion"]](
            factors, min_cluster_size=self.config["min_cluster_size"], min_samples=self.config["min_samples"],
            rng=np.random.default_rng([self.seed, self.epoch]))
        record.update(clustered=True, analysis_seconds=round(time.perf_counter() - started, 5))
        new_model = None
        if groups_of(labels):
            new_groups, sources = merge_groups(self.groups, labels, self.problem.task_names)
            new_model = BlockNetwork(self.make_structure(self._backbone, new_groups))
            kept = carry_weights(context.model, new_model, self.groups, new_groups, sources, self._backbone,
                                 self.config["merge"], context.train_losses)
            record.update(merged=[g for g in new_groups if g[0] in kept], kept=kept)
            self.groups, self.quiet_epochs = new_groups, 0
        else:
            self.quiet_epochs += 1
        if all(len(g) >= 2 for g in self.groups) or self.quiet_epochs >= self.config["patience"]:
            self.lock_epoch = self.epoch
        return new_model

    # results
    def report(self) -> dict:
        return {"merge_history": self.history, "lock_epoch": self.lock_epoch,
                "final_groups": [list(g) for g in self.groups], "params_before_merging": self.start.get("params")}

    def artifacts(self, model: nn.Module, out_dir) -> list[str]:
        if not self.history:
            return []
        title = f"Selective Sharing ({self.config['criterion']}, merge={self.config['merge']})"
        plot_merge_history(self.history, self.start, Path(out_dir) / "merge_history.png", self.lock_epoch, title)
        return ["merge_history.png"]
