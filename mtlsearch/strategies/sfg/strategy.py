"""The SFG strategy: builds the SFGNetwork, adds the regularisers, anneals tau, logs and draws what p learned."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..base import EpochContext, Strategy, check_choice, check_range
from ...errors import ConfigError
from .export import argmax_structure
from .layers import P_INITS, P_NORMALISATIONS
from .learned import allocation_summary, draw_pictures
from .network import SFGNetwork


class StochasticFilterGroups(Strategy):
    name = "sfg"
    description = "every kernel learns a task-specific or shared group (Bragman et al. 2019), T tasks"
    defaults = {
        "tau0": 1.0,  # Gumbel-softmax temperature (at step 0 when annealed; published: constant 0.1)
        "tau_min": 0.05,  # floor of the annealed temperature
        "anneal_rate": 0.0,  # tau = max(tau_min, tau0 * exp(-anneal_rate * step)); 0: constant tau0
        "lambda1": 5e-4,  # weight of sum ||M||^2 over the grouped layers' kernels
        "lambda2": 0.1,  # weight of the (maximised) sum over layers of the mean entropy of p (published: 1)
        "p_init": "uniform",  # uniform, dirichlet (Dirichlet(1, ..., 1)) or vertex (each kernel near one group)
        "p_normalise": "softplus",  # p = softplus(theta) / sum (published code) or softmax(theta)
        "p_lr_scale": 100.0,  # theta = p_lr_scale * phi, phi trained: the logits learn this much faster than weights
        "straight_through": True,  # hard one-hot samples forward, soft gradient back; False: soft samples
        "sample_per_example": False,  # one allocation per example instead of one per forward pass
        "combine": "conv1x1",  # next task stream: 1x1 conv over concat(task, shared) outputs, or their sum
        "inference": "argmax",  # evaluation: argmax allocation, or mc (vote / mean over mc_samples allocations)
        "mc_samples": 10,
        "calibration_batches": 4,  # recent training batches that re-estimate BN statistics before evaluation
    }

    def __init__(self, problem, config=None, seed=0):
        super().__init__(problem, config, seed)
        self.trajectory: list[list[np.ndarray]] = []  # p of every layer at the start and after every epoch

    def validate(self):
        c = self.config
        for key in ("tau0", "tau_min", "p_lr_scale"):
            check_range(c, key, 0.0, low_open=True)
        for key in ("anneal_rate", "lambda1", "lambda2"):
            check_range(c, key, 0.0)
        if c["anneal_rate"] > 0 and c["tau_min"] > c["tau0"]:
            raise ConfigError(f"tau_min must not exceed tau0 when annealing, got tau_min={c['tau_min']!r} > "
                              f"tau0={c['tau0']!r}")
        check_choice(c, "p_init", P_INITS)
        check_choice(c, "p_normalise", P_NORMALISATIONS)
        check_choice(c, "combine", ("conv1x1", "sum"))
        check_choice(c, "inference", ("argmax", "mc"))
        for key in ("straight_through", "sample_per_example"):
            if not isinstance(c[key], bool):
                raise ConfigError(f"{key} must be true or false, got {c[key]!r}")
        check_range(c, "mc_samples", 1, integer=True)
        check_range(c, "calibration_batches", 0, integer=True)

    def build(self, backbone, state=None) -> SFGNetwork:
        model = SFGNetwork(backbone, self.problem.tasks, self.config, self.seed)
        self.trajectory = [[p.detach().cpu().numpy() for p in model.probabilities()]]  # epoch 0: the start
        return model

    def state_dict(self) -> dict:
        return {"trajectory": [[torch.from_numpy(p) for p in epoch] for epoch in self.trajectory]}

    def load_state_dict(self, state: dict) -> None:
        self.trajectory = [[p.numpy() for p in epoch] for epoch in state["trajectory"]]

    # training hooks
    def tau(self, step: int) -> float:
        """tau = max(tau_min, tau0 * exp(-anneal_rate * step)); constant tau0 when anneal_rate is 0."""
        c = self.config
        if c["anneal_rate"] == 0:
            return float(c["tau0"])
        return max(float(c["tau_min"]), c["tau0"] * math.exp(-c["anneal_rate"] * step))

    def extra_loss(self, model: SFGNetwork) -> torch.Tensor | None:
        """lambda1 * sum ||M||^2 - lambda2 * sum_l mean_k H(p_k^(l)) (the entropy is maximised)."""
        terms = []
        if self.config["lambda1"]:
            terms.append(self.config["lambda1"] * sum(torch.linalg.vector_norm(w).square()
                                                      for w in model.kernel_weights()))
        if self.config["lambda2"]:
            terms.append(-self.config["lambda2"] * model.entropy())
        return sum(terms) if terms else None

    def after_step(self, model: SFGNetwork, step: int) -> None:
        model.tau = self.tau(step)

    def end_epoch(self, context: EpochContext):
        model = context.model
        context.log["sfg"] = allocation_summary(model)
        self.trajectory.append([p.detach().cpu().numpy() for p in model.probabilities()])
        return None

    # results
    def structure(self, model: SFGNetwork):
        return argmax_structure(model, self.problem, self.name, self.config)

    def artifacts(self, model: SFGNetwork, out_dir) -> list[str]:
        out = Path(out_dir)
        summary = {"final": allocation_summary(model), "epochs": max(len(self.trajectory) - 1, 0),
                   "groups": model.group_names}
        (out / "sfg_allocation.json").write_text(json.dumps(summary, indent=1) + "\n")
        final = [p.detach().cpu().numpy() for p in model.probabilities()]
        return ["sfg_allocation.json", *draw_pictures(out, final, self.trajectory, model.group_names)]
