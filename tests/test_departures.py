"""Where the project departs from the papers, and the settings that bring the papers back: the papers' optimiser
(SGD with momentum), Task Routing's per-task batch-norm statistics, SFG without a learned allocation, and how
p_lr_scale acts under each optimiser."""
from __future__ import annotations

import pytest
import torch

from mtlsearch.cli import main
from mtlsearch.errors import ConfigError
from mtlsearch.problems import load_problem
from mtlsearch.settings import split_settings
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.sfg.layers import KernelGroups
from mtlsearch.strategies.task_routing.norm import TaskBalancedBatchNorm
from mtlsearch.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    return load_problem("digits")


def trainer(problem, strategy="hard_sharing", settings=None, **train):
    return Trainer(problem, get_strategy(strategy)(problem, settings or {}, 0), TrainConfig(**train), quiet=True)


# the papers' optimiser
def test_optimizer_setting_builds_adam_or_sgd_with_momentum(digits):
    adam = trainer(digits, epochs=1).optimizer
    sgd = trainer(digits, epochs=1, optimizer="sgd", lr=0.01, momentum=0.5).optimizer
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 1e-3
    assert type(sgd) is torch.optim.SGD
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (0.01, 0.5, 0.0)


def test_optimizer_settings_come_through_set_and_bad_values_name_the_valid_ones(capsys):
    config, _ = split_settings({"optimizer": "sgd", "lr": 0.02, "momentum": 1}, get_strategy("selective_sharing"))
    assert (config.optimizer, config.lr, config.momentum, type(config.momentum)) == ("sgd", 0.02, 1.0, float)
    with pytest.raises(ConfigError, match="optimizer must be one of adam, sgd, got 'rmsprop'"):
        split_settings({"optimizer": "rmsprop"}, get_strategy("hard_sharing"))
    with pytest.raises(ConfigError, match="momentum must be in"):
        split_settings({"momentum": -0.1}, get_strategy("hard_sharing"))
    assert main(["strategies"]) == 0
    listing = capsys.readouterr().out
    assert "optimizer=adam" in listing and "momentum=0.5" in listing and "Adam's" not in listing


def test_sgd_training_resumes_exactly_with_its_momentum_buffers(digits):
    """Two epochs straight equal one epoch, the trainer's state into a new trainer, then the second epoch."""
    settings = dict(optimizer="sgd", lr=0.02, momentum=0.5, batch_size=128, backbone="mlp")
    straight = trainer(digits, epochs=2, **settings)
    straight.fit()
    first = trainer(digits, epochs=1, **settings)
    first.fit()
    assert all("momentum_buffer" in s for s in first.optimizer.state_dict()["state"].values())
    resumed = trainer(digits, epochs=2, **settings)
    resumed.load_state_dict(first.state_dict())
    resumed.fit()
    assert [r["val_score"] for r in resumed.history] == [r["val_score"] for r in straight.history]
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


# Task Routing: each task's batch-norm statistics
def test_with_ten_or_more_tasks_a_task_statistics_are_its_last_batch():
    """12 tasks, one per batch, every task its own input class (past a routed layer): the rate min(1, 0.1 * 12)
    is 1, so task 0's statistics are its last batch's (mean 3), task 1's its one batch's; tasks never drawn keep
    0 and 1. (Measured against a per-task moving average: over the same weights the last batch scored higher.)"""
    norm = TaskBalancedBatchNorm(2, 12)
    norm.set_classes(torch.arange(12).numpy())
    norm.train()
    spread = torch.tensor([-1.0, 1.0]).repeat(4).view(8, 1, 1, 1).expand(8, 2, 1, 1)  # unbiased variance 8/7
    for task, mean in ((0, 1.0), (1, -4.0), (0, 3.0)):
        norm.set_active([task], torch.tensor([task]))
        norm(mean + spread)
    expected_mean, expected_var = torch.zeros(12, 2), torch.ones(12, 2)
    expected_mean[0], expected_mean[1], expected_var[:2] = 3.0, -4.0, 8 / 7
    assert torch.allclose(norm.running_mean, expected_mean, atol=1e-6)
    assert torch.allclose(norm.running_var, expected_var, atol=1e-6)
    assert norm.task_seen.tolist() == [True, True] + [False] * 10


def test_with_three_tasks_a_task_average_moves_by_momentum_times_three():
    """3 tasks, one per batch: each task is drawn about every third batch, so its average moves by 0.3."""
    norm = TaskBalancedBatchNorm(1, 3)
    norm.set_classes(torch.arange(3).numpy())
    norm.train()
    for mean in (1.0, 2.0):
        norm.set_active([0], torch.tensor([0]))
        norm(mean + torch.tensor([-1.0, 1.0]).view(2, 1))
    assert torch.allclose(norm.running_mean[0], torch.tensor([0.7 * 0.3 * 1.0 + 0.3 * 2.0]))


# SFG without a learned allocation
def test_sfg_without_learned_allocation_keeps_p_and_still_samples_kernels(digits):
    settings = {"learn_allocation": False, "inference": "mc", "mc_samples": 3}
    tr = trainer(digits, "sfg", settings, epochs=1, batch_size=128)
    start = [layer.probabilities.scaled_logits.detach().clone() for layer in tr.model.layers]
    weights = [w.detach().clone() for w in tr.model.kernel_weights()]
    x, y = digits.train.tensors[0][:128], digits.train.tensors[1][:128]
    for _ in range(3):
        tr.train_step(x, y)
    for layer, logits in zip(tr.model.layers, start):
        assert torch.equal(layer.probabilities.scaled_logits, logits)
        assert torch.allclose(layer.probabilities(), torch.full_like(layer.probabilities(), 1 / 11))
    assert all(not torch.equal(w, w0) for w, w0 in zip(tr.model.kernel_weights(), weights))
    draws = [torch.cat(tr.model.sample_masks(None, tr.model.generator)).argmax(1) for _ in range(2)]
    assert not torch.equal(*draws)  # each forward pass samples another allocation from the fixed p
    learned = trainer(digits, "sfg", {}, epochs=1, batch_size=128)
    before = learned.model.layers[0].probabilities.scaled_logits.detach().clone()
    learned.train_step(x, y)
    assert not torch.equal(learned.model.layers[0].probabilities.scaled_logits, before)


def test_sfg_fixed_uniform_p_refuses_argmax_inference(digits):
    with pytest.raises(ConfigError, match="learn_allocation=false keeps p uniform.*inference=mc"):
        get_strategy("sfg")(digits, {"learn_allocation": False}, 0)
    get_strategy("sfg")(digits, {"learn_allocation": False, "p_init": "vertex"}, 0)  # a fixed allocation: fine


@pytest.mark.parametrize("optimizer, moved", [("sgd", 100.0 ** 2), ("adam", 100.0)])
def test_p_lr_scale_is_squared_under_sgd(optimizer, moved):
    """theta = s * phi with phi trained: one step moves theta by s * lr under Adam (whose step ignores the
    gradient's size) but by s^2 * lr * dL/dtheta under SGD, since dL/dphi = s * dL/dtheta."""
    groups = KernelGroups(4, 3, "softplus", "uniform", torch.Generator().manual_seed(0), lr_scale=100.0)
    before = groups.logits.detach().clone()
    step = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer](groups.parameters(), lr=1e-6)
    (groups.logits * 2.0).sum().backward()  # dL/dtheta = 2 everywhere
    step.step()
    change = before - groups.logits.detach()
    assert torch.allclose(change, torch.full_like(change, moved * 1e-6 * (2.0 if optimizer == "sgd" else 1.0)),
                          rtol=1e-3)
