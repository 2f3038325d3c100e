"""Stochastic Filter Groups: the kernel distributions, the estimator, the schedule, the loss, the export, learning."""
from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest
import torch

from mtlsearch.errors import ConfigError
from mtlsearch.problems import load_problem
from mtlsearch.problems.data import tensor_dataset
from mtlsearch.run import train_run
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.sfg import SFGNetwork, StochasticFilterGroups
from mtlsearch.strategies.sfg.layers import KernelGroups, argmax_allocation
from mtlsearch.strategies.sfg.network import monte_carlo
from mtlsearch.structure.freeze import freeze
from mtlsearch.structure.graph import SharingStructure


@pytest.fixture(scope="module")
def multidigits():
    return load_problem("multidigits")


def two_tasks(problem):
    """left_digit and digit_sum only: three groups, the paper's set-up (and the simplex picture)."""
    keep = [0, 4]
    sub = lambda d: tensor_dataset(d.tensors[0].numpy(), d.tensors[1][:, keep].numpy())
    return dataclasses.replace(problem, tasks=[problem.tasks[i] for i in keep], train=sub(problem.train),
                               val=sub(problem.val), test=sub(problem.test))


def build(problem, backbone="cnn", seed=0, **config) -> tuple[StochasticFilterGroups, SFGNetwork]:
    strategy = StochasticFilterGroups(problem, config, seed=seed)
    return strategy, strategy.build(strategy.backbone(backbone))


def train_steps(strategy, model, problem, steps=3, batch=32):
    """A few real optimiser steps, so weights, p, the mixes and the BN statistics all move."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = problem.train.tensors
    model.train()
    for step in range(steps):
        xb, yb = x[step * batch:(step + 1) * batch], y[step * batch:(step + 1) * batch]
        out = model(xb)
        loss = sum(t.loss(out[t.name], yb[:, i]) for i, t in enumerate(problem.tasks)) + strategy.extra_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        strategy.after_step(model, step + 1)


# ----------------------------------------------------------------------------------------- p and sampling

@pytest.mark.parametrize("normalise", ["softplus", "softmax"])
@pytest.mark.parametrize("init", ["uniform", "dirichlet", "vertex"])
def test_p_rows_sum_to_one_for_every_init(init, normalise):
    groups = KernelGroups(40, 7, normalise, init, torch.Generator().manual_seed(3))
    p = groups()
    assert p.shape == (40, 7)
    assert torch.allclose(p.sum(1), torch.ones(40), atol=1e-6)
    assert (p > 0).all()
    if init == "uniform":
        assert torch.allclose(p, torch.full((40, 7), 1 / 7), atol=1e-6)
    if init == "vertex":  # every kernel starts near one group, the groups dealt out evenly
        assert torch.allclose(p.max(1).values, torch.full((40,), 0.99), atol=1e-4)
        assert sorted(np.bincount(p.argmax(1).numpy(), minlength=7)) == [5, 5, 6, 6, 6, 6, 6]


def test_random_inits_follow_the_seed():
    def draw(seed):
        return KernelGroups(20, 3, "softplus", "dirichlet", torch.Generator().manual_seed(seed))()
    assert torch.equal(draw(1), draw(1))
    assert not torch.allclose(draw(1), draw(2))


def test_straight_through_sample_is_one_hot_and_its_gradient_reaches_the_logits(multidigits):
    strategy, model = build(multidigits)
    model.train()
    out = model(multidigits.train.tensors[0][:16])
    sum(o.square().mean() for o in out.values()).backward()
    for layer in model.layers:
        grad = layer.probabilities.scaled_logits.grad
        assert grad is not None and grad.abs().sum() > 0
    z = model.layers[0].probabilities.sample(1.0, True, None, torch.Generator().manual_seed(0))
    assert set(z.detach().unique().tolist()) == {0.0, 1.0} and torch.equal(z.detach().sum(1), torch.ones(20))
    soft = model.layers[0].probabilities.sample(1.0, False, 8, torch.Generator().manual_seed(0))
    assert soft.shape == (8, 20, 7) and ((soft > 0) & (soft < 1)).all()  # one soft draw per example


def test_sample_per_example_gives_examples_different_allocations(multidigits):
    _, model = build(multidigits, sample_per_example=True, p_init="dirichlet")
    model.train()
    masks = model.sample_masks(16, torch.Generator().manual_seed(0))
    assert masks[0].shape == (16, 20, 7)
    assert not torch.equal(masks[0][0], masks[0][1])
    out = model(multidigits.train.tensors[0][:16])
    assert out["left_digit"].shape == (16, 10)


def test_tau_schedule_gives_the_stated_values(multidigits):
    constant = StochasticFilterGroups(multidigits, {"tau0": 0.5})
    assert constant.tau(0) == constant.tau(10 ** 6) == 0.5
    annealed = StochasticFilterGroups(multidigits, {"tau0": 2.0, "tau_min": 0.1, "anneal_rate": 1e-3})
    for step in (0, 100, 1000, 2000):
        assert annealed.tau(step) == pytest.approx(max(0.1, 2.0 * math.exp(-1e-3 * step)))
    assert annealed.tau(100) == pytest.approx(1.80967483607)
    assert annealed.tau(10 ** 5) == 0.1  # the floor
    model = annealed.build(annealed.backbone("cnn"))
    annealed.after_step(model, 1000)
    assert model.tau == pytest.approx(2.0 * math.exp(-1.0))


def test_raising_the_entropy_lowers_the_loss_term(multidigits):
    strategy, model = build(multidigits, lambda1=0.0, lambda2=0.5, p_init="vertex")
    low = float(strategy.extra_loss(model).detach())
    with torch.no_grad():
        for layer in model.layers:
            layer.probabilities.scaled_logits.zero_()  # softplus of equal logits: uniform p, the maximum entropy
    high = float(strategy.extra_loss(model).detach())
    assert high < low
    assert high == pytest.approx(-0.5 * len(model.layers) * math.log(7), rel=1e-5)
    strategy, model = build(multidigits, lambda1=1e-3, lambda2=0.0)
    penalty = sum(float(layer.op.weight.square().sum()) for layer in model.layers)
    assert float(strategy.extra_loss(model).detach()) == pytest.approx(1e-3 * penalty, rel=1e-5)


def test_monte_carlo_returns_the_mode_for_classes_and_the_mean_for_values(multidigits):
    left, parity = multidigits.task("left_digit"), multidigits.task("left_is_even")
    total = multidigits.task("digit_sum")
    votes = [torch.tensor([[5.0, 0, 0], [0, 0, 1]]), torch.tensor([[0, 2.0, 0], [0, 0, 3]]),
             torch.tensor([[4.0, 0, 0], [9, 0, 0]])]
    assert monte_carlo(left, votes).argmax(1).tolist() == [0, 2]
    signs = [torch.tensor([[1.0], [-2.0]]), torch.tensor([[0.5], [3.0]]), torch.tensor([[-9.0], [-1.0]])]
    assert (monte_carlo(parity, signs).reshape(-1) > 0).tolist() == [True, False]  # 2 of 3 positive; 1 of 3
    assert torch.allclose(monte_carlo(total, signs), torch.tensor([[-2.5], [0.0]]))


def test_monte_carlo_inference_is_deterministic(multidigits):
    strategy, model = build(multidigits, inference="mc", mc_samples=3, p_init="dirichlet")
    train_steps(strategy, model, multidigits)
    model.eval()
    x = multidigits.val.tensors[0][:32]
    first, second = model(x), model(x)
    assert all(torch.equal(first[t], second[t]) for t in first)
    assert len(model.mc_statistics) == 3  # BN statistics recomputed for each sampled network


def test_checkpoint_reloads_the_evaluated_networks(multidigits):
    strategy, model = build(multidigits, inference="mc", mc_samples=2, p_init="dirichlet")
    train_steps(strategy, model, multidigits)
    strategy.end_epoch(type("Context", (), {"model": model, "log": {}})())
    model.eval()
    x = multidigits.val.tensors[0][:32]
    with torch.no_grad():
        expected = model(x)
    buffer = io.BytesIO()
    torch.save({"weights": model.state_dict(), "strategy": strategy.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    again, fresh = build(multidigits, inference="mc", mc_samples=2, p_init="dirichlet")
    fresh.load_state_dict(saved["weights"])
    again.load_state_dict(saved["strategy"])
    fresh.eval()  # nothing to recalibrate from: the saved statistics of every evaluated network are used
    with torch.no_grad():
        got = fresh(x)
    assert all(torch.equal(got[t], expected[t]) for t in expected)
    assert len(again.trajectory) == 2 and np.array_equal(again.trajectory[1][0], strategy.trajectory[1][0])


# ----------------------------------------------------------------------------------------- the argmax export

def check_frozen_equals_argmax(strategy, model, problem):
    model.eval()
    model.inference = "argmax"
    structure, weights = strategy.structure(model)
    frozen = freeze(structure, weights).eval()
    x = problem.val.tensors[0][:48]
    with torch.no_grad():
        expected, got = model(x), frozen(x)
    for task in problem.task_names:
        assert torch.allclose(got[task], expected[task], atol=1e-5, rtol=1e-4), task
    graph = structure.graph
    total = sum(d["params"] for _, d in graph.nodes(data=True))
    assert total == sum(p.numel() for p in frozen.parameters())
    return structure


@pytest.mark.parametrize("combine", ["conv1x1", "sum"])
def test_argmax_frozen_model_equals_argmax_sfg(multidigits, combine):
    strategy, model = build(multidigits, combine=combine, p_init="dirichlet", seed=1)
    train_steps(strategy, model, multidigits)
    structure = check_frozen_equals_argmax(strategy, model, multidigits)
    p = [layer.probabilities().detach() for layer in model.layers]
    sizes = [np.bincount(argmax_allocation(probs).numpy(), minlength=7) for probs in p]
    for layer_no, probs in enumerate(p, start=1):  # one block per group that has kernels and a reader
        shared = structure.graph.nodes[f"l{layer_no}_shared"]
        assert shared["width"] == sizes[layer_no - 1][0] and shared["group_sizes"]["shared"] == sizes[layer_no - 1][0]
        assert shared["mean_p"]["shared"] == pytest.approx(float(probs[:, 0].mean()), abs=1e-4)
        for t, task in enumerate(multidigits.task_names, start=1):
            read = layer_no == len(p) or sizes[layer_no][t] > 0
            assert (f"l{layer_no}_task_{task}" in structure.graph) == (sizes[layer_no - 1][t] > 0 and read)


def test_empty_groups_are_skipped_and_the_shared_group_is_kept(multidigits, tmp_path):
    strategy, model = build(multidigits, p_init="dirichlet", seed=2)
    train_steps(strategy, model, multidigits)
    first, second = model.layers[0].probabilities, model.layers[1].probabilities
    with torch.no_grad():  # layer 1: kernels dealt to groups 2..6, nothing shared or for left_digit (group 1)
        theta = torch.full((20, 7), -50.0)
        theta[torch.arange(20), 2 + torch.arange(20) % 5] = 5.0
        theta[19, 0] = -10.0  # the kernel with the highest p_shared
        first.scaled_logits.copy_(theta / first.lr_scale)
        second.scaled_logits[:, 3:] = -50.0 / second.lr_scale  # layer 2: no kernel for groups 3..6
    assert (first.allocation() == 0).tolist() == [False] * 19 + [True]  # argmax left none shared
    structure = check_frozen_equals_argmax(strategy, model, multidigits)
    g = structure.graph
    assert g.nodes["l1_shared"]["width"] == 1 and g.nodes["l1_shared"]["group_sizes"]["left_digit"] == 0
    assert "l1_task_left_digit" not in g and "l2_task_left_is_even" not in g
    # layer 1's left_is_even kernels fed only layer 2's empty left_is_even group: nothing reads them
    assert g.nodes["l1_shared"]["group_sizes"]["left_is_even"] == 4 and "l1_task_left_is_even" not in g
    assert g.nodes["l1_task_right_digit"]["width"] == 4
    structure.save_graphml(tmp_path / "s.graphml")  # lists and dicts in node attributes survive GraphML
    back = SharingStructure.load_graphml(tmp_path / "s.graphml")
    assert back.graph.nodes["l1_shared"]["group_sizes"] == g.nodes["l1_shared"]["group_sizes"]


def test_linear_trunk_of_the_mlp_exports_exactly():
    problem = load_problem("synthetic")
    strategy, model = build(problem, backbone="mlp", p_init="dirichlet")
    train_steps(strategy, model, problem)
    check_frozen_equals_argmax(strategy, model, problem)


# ----------------------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("setting, match", [
    ({"tau0": 0.0}, "tau0"), ({"tau0": -1.0}, "tau0"), ({"tau_min": 0.0}, "tau_min"),
    ({"tau0": 0.1, "tau_min": 0.5, "anneal_rate": 1e-3}, "tau_min"), ({"lambda1": -1e-4}, "lambda1"),
    ({"lambda2": -1.0}, "lambda2"),
    ({"anneal_rate": -1.0}, "anneal_rate"), ({"p_init": "normal"}, "p_init"), ({"combine": "concat"}, "combine"),
    ({"p_normalise": "sigmoid"}, "p_normalise"), ({"inference": "mean"}, "inference"),
    ({"mc_samples": 0}, "mc_samples"), ({"straight_through": "yes"}, "straight_through"),
    ({"p_lr_scale": 0.0}, "p_lr_scale"), ({"calibration_batches": -1}, "calibration_batches"),
    ({"temperature": 1.0}, "temperature")])
def test_bad_config_raises_a_clear_value_error(multidigits, setting, match):
    with pytest.raises(ConfigError, match=match) as err:
        get_strategy("sfg")(multidigits, setting)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------- learning

def test_train_multidigits_learns_and_writes_what_it_learned(multidigits, tmp_path):
    metrics = train_run("multidigits", "sfg", tmp_path, epochs=3, quiet=True)
    y = multidigits.test.tensors[1].numpy()
    for i, task in enumerate(multidigits.tasks):
        got = metrics["test"]["tasks"][task.name]
        if task.type == "regression":
            assert got["r2"] > 0.3, task.name
        else:
            majority = np.bincount(y[:, i].astype(int)).max() / len(y)
            assert got["accuracy"] > majority + 0.1, (task.name, got["accuracy"], majority)
    for name in ("structure.json", "structure.graphml", "sfg_allocation.json", "sfg_group_shares.png",
                 "sfg_p_density.png", "sfg_trajectories.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    layers = epochs[-1]["sfg"]["layers"]
    assert [entry["layer"] for entry in layers] == [1, 2, 3]
    for entry in layers:
        assert sum(entry["kernels"].values()) == entry["width"]
        assert sum(entry["mean_p"].values()) == pytest.approx(1.0, abs=1e-3)
        assert 0 < entry["entropy"] <= math.log(7) + 1e-6
    structure = SharingStructure.load_json(tmp_path / "structure.json")
    assert structure.graph.nodes["l1_shared"]["op"]["type"] == "conv"


def test_pictures_for_two_tasks_draw_the_simplex(multidigits, tmp_path):
    problem = two_tasks(multidigits)
    strategy, model = build(problem, p_init="dirichlet")
    strategy.end_epoch(type("Context", (), {"model": model, "log": {}})())
    train_steps(strategy, model, problem)
    strategy.end_epoch(type("Context", (), {"model": model, "log": {}})())
    names = strategy.artifacts(model, tmp_path)
    assert names == ["sfg_allocation.json", "sfg_group_shares.png", "sfg_p_density.png", "sfg_trajectories.png"]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
