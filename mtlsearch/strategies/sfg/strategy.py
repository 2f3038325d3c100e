"""The SFG strategy: builds the SFGNetwork, adds the regularisers, anneals tau, logs and draws what p learned."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..base import EpochContext, Strategy
from ..setting import Setting
from ...errors import ConfigError
from .export import argmax_structure
from .layers import P_INITS, P_NORMALISATIONS
from .learned import allocation_summary, draw_pictures
from .network import SFGNetwork


class StochasticFilterGroups(Strategy):
    name = "sfg"
    description = "every kernel learns a task-specific or shared group (Bragman et al. 2019), T tasks"
    settings = (
        Setting("tau0", float, 1.0, "Gumbel-softmax temperature (at step 0 when annealed; published: constant 0.1)",
                low=0.0, low_open=True),
        Setting("tau_min", float, 0.05, "floor of the annealed temperature", low=0.0, low_open=True),
        Setting("anneal_rate", float, 0.0, "tau = max(tau_min, tau0 * exp(-anneal_rate * step)); 0: constant tau0",
                low=0.0),
        Setting("lambda1", float, 5e-4, "weight of sum ||M||^2 over the grouped layers' kernels", low=0.0),
        Setting("lambda2", float, 0.1, "weight of the (maximised) sum over layers of the mean entropy of p "
                "(published: 1)", low=0.0),
        Setting("p_init", str, "uniform", "p at the start: uniform, Dirichlet(1, ..., 1) draws, or each kernel near "
                "one group", choices=P_INITS),
        Setting("p_normalise", str, "softplus", "p = softplus(theta) / sum (published code) or softmax(theta)",
                choices=P_NORMALISATIONS),
        Setting("p_lr_scale", float, 100.0, "theta = p_lr_scale * phi, phi trained: the logits learn this much faster "
                "than weights under adam (its square under sgd)", low=0.0, low_open=True),
        Setting("learn_allocation", bool, True, "false: p stays at p_init and only the weights train (the paper's "
                "MTL network with no learned allocation)"),
        Setting("straight_through", bool, True, "hard one-hot samples forward, soft gradient back; false: soft "
                "samples"),
        Setting("sample_per_example", bool, False, "one allocation per example instead of one per forward pass"),
        Setting("combine", str, "conv1x1", "next task stream: 1x1 conv over concat(task, shared) outputs, or their "
                "sum", choices=("conv1x1", "sum")),
        Setting("inference", str, "argmax", "evaluation: argmax allocation, or mc (vote / mean over mc_samples "
                "allocations)", choices=("argmax", "mc")),
        Setting("mc_samples", int, 10, "allocations sampled per evaluation with inference=mc", low=1),
        Setting("calibration_batches", int, 4, "recent training batches that re-estimate BN statistics before "
                "evaluation", low=0),
    )

    def __init__(self, problem, config=None, seed=0):
        super().__init__(problem, config, seed)
        self.trajectory: list[list[np.ndarray]] = []  # p of every layer at the start and after every epoch

    def validate(self):
        """An annealed temperature must start at or above its floor; a fixed uniform p has no argmax to evaluate."""
        c = self.config
        if c["anneal_rate"] > 0 and c["tau_min"] > c["tau0"]:
            raise ConfigError(f"tau_min must not exceed tau0 when annealing, got tau_min={c['tau_min']!r} > "
                              f"tau0={c['tau0']!r}")
        if not c["learn_allocation"] and c["p_init"] == "uniform" and c["inference"] == "argmax":
            raise ConfigError("learn_allocation=false keeps p uniform, where every kernel's argmax is a tie (it would "
                              "evaluate an all-shared network); set inference=mc, or p_init=dirichlet or vertex")

    def build(self, backbone, state=None) -> SFGNetwork:
        model = SFGNetwork(backbone, self.problem.tasks, self.config, self.seed)
        if not self.config["learn_allocation"]:  # no gradient: the optimiser never steps the logits
            for layer in model.layers:
                layer.probabilities.scaled_logits.requires_grad_(False)
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
        """lambda1 * sum ||M||^2 - lambda2 * sum_l mean_k H(p_k^(l)) (the entropy is maximised; left out when p is
        fixed)."""
        terms = []
        if self.config["lambda1"]:
            terms.append(self.config["lambda1"] * sum(torch.linalg.vector_norm(w).square()
                                                      for w in model.kernel_weights()))
        if self.config["lambda2"] and self.config["learn_allocation"]:  # a fixed p's entropy is a constant
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
