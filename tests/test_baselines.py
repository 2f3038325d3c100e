"""Baselines learn on digits; training is deterministic; backbones handle small and vector inputs."""
import pytest
import torch

from mtlsearch.backbones import get_backbone
from mtlsearch.errors import ConfigError, UserError
from mtlsearch.problems import load_problem
from mtlsearch.strategies import get_strategy
from mtlsearch.training import TrainConfig, Trainer, evaluate


@pytest.fixture(scope="module")
def digits():
    return load_problem("digits")


def fit(problem, name, epochs=4, seed=0, **config):
    trainer = Trainer(problem, get_strategy(name)(problem, config, seed), TrainConfig(epochs=epochs),
                      seed=seed, quiet=True)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("name", ["single_task", "hard_sharing", "cross_stitch"])
def test_baseline_learns_digits(digits, name):
    trainer = fit(digits, name)
    test = evaluate(trainer.model, digits, "test")
    # a one-vs-all majority guess scores 0.90; learning all ten digits is needed for 0.97
    assert test["score"] >= 0.97
    assert min(m["f1"] for m in test["tasks"].values()) >= 0.8


def test_baseline_parameter_counts_reflect_sharing(digits):
    counts = {n: sum(p.numel() for p in
                     get_strategy(n)(digits, {}, 0).build(get_backbone(None, (1, 8, 8))).parameters())
              for n in ("single_task", "hard_sharing", "cross_stitch")}
    assert counts["hard_sharing"] < counts["single_task"] < counts["cross_stitch"]
    # cross-stitch adds one alpha per (column, column) pair after each of the 3 trunk layers
    assert counts["cross_stitch"] - counts["single_task"] == 3 * 10 * 10


def test_same_seed_same_numbers(digits):
    a, b = fit(digits, "hard_sharing", epochs=2), fit(digits, "hard_sharing", epochs=2)
    timeless = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert timeless(a.history) == timeless(b.history)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    c = fit(digits, "hard_sharing", epochs=2, seed=1)
    assert not torch.equal(next(iter(a.model.parameters())), next(iter(c.model.parameters())))


def test_baselines_learn_heterogeneous_tasks():
    problem = load_problem("multidigits")
    trainer = fit(problem, "hard_sharing", epochs=6)
    tasks = evaluate(trainer.model, problem, "test")["tasks"]
    assert tasks["left_digit"]["accuracy"] > 0.8 and tasks["right_digit"]["accuracy"] > 0.8
    assert tasks["digit_sum"]["r2"] > 0.7


@pytest.mark.parametrize("name, shape", [("vgg11", (1, 8, 8)), ("vgg16", (3, 32, 32)), ("cnn", (3, 28, 28)),
                                         ("mlp", (1, 8, 8)), ("mlp", (20,))])
def test_backbones_run_on_small_and_vector_inputs(name, shape):
    from mtlsearch.backbones import build_units

    backbone = get_backbone(name, shape)
    x = torch.randn(2, *shape)
    for unit in build_units(backbone.trunk + backbone.branch, shape):
        x = unit(x)
    assert tuple(x.shape[1:]) == backbone.feature_shape


def test_bad_backbone_and_setting():
    with pytest.raises(UserError, match="unknown backbone 'resnet'; valid: cnn, mlp, vgg11, vgg16"):
        get_backbone("resnet", (1, 8, 8))
    with pytest.raises(UserError, match="valid: mlp"):
        get_backbone("cnn", (20,))
    with pytest.raises(ConfigError, match="self_weight must be in"):
        get_strategy("cross_stitch")(load_problem("digits"), {"self_weight": 1.5})
    with pytest.raises(ConfigError, match="lr must be in"):
        TrainConfig(lr=0).validate()
