"""Task Routing: masks (partition and knockout), gradient masking, batched all-task passes, structure and freeze."""
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch

from mtlsearch.backbones import get_backbone
from mtlsearch.cli import main
from mtlsearch.errors import ConfigError
from mtlsearch.problems import Problem, Task, load_problem
from mtlsearch.problems.data import tensor_dataset
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.task_routing import TaskRouting
from mtlsearch.strategies.task_routing.heads import TaskHeads
from mtlsearch.strategies.task_routing.masks import TaskRoutingLayer, knockout_masks, make_masks, partition_masks
from mtlsearch.strategies.task_routing.norm import TaskBalancedBatchNorm
from mtlsearch.structure.freeze import freeze
from mtlsearch.structure.graph import SharingStructure
from mtlsearch.training import TrainConfig, Trainer, evaluate


@pytest.fixture(scope="module")
def digits():
    return load_problem("digits")


def binary_problem(n_tasks: int, shape=(1, 8, 8), n: int = 32) -> Problem:
    rng = np.random.default_rng(0)
    data = tensor_dataset(rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, 2, (n, n_tasks)))
    return Problem("random", [Task(f"t{i}", "binary") for i in range(n_tasks)], data, data, data, input_shape=shape)


def build(problem, seed=0, backbone=None, **config):
    strategy = TaskRouting(problem, config, seed)
    torch.manual_seed(seed)
    return strategy, strategy.build(get_backbone(backbone, problem.input_shape))


def masks_of(model) -> list[np.ndarray]:
    return [layer.masks.numpy() for layer in model.routing_layers().values()]


def warmed_up(model, x, steps=3):
    """A few train-mode passes (one task, all tasks) so BN statistics are not at their initial values."""
    model.train()
    with torch.no_grad():
        for i in range(steps):
            model(x, [model.task_names[i % len(model.task_names)]])
            model(x)
    return model.eval()


# masks


def test_sigma_one_is_hard_sharing_and_zero_disjoint(digits):
    _, model = build(digits, sigma=1.0)
    assert all(m.min() == 1 for m in masks_of(model))
    _, model = build(digits, sigma=0.0)
    for m in masks_of(model):
        assert (m.sum(0) == 1).all()  # every channel belongs to exactly one task
        assert m.sum(1).min() >= math.floor(m.shape[1] / 10)  # dealt round-robin: no task is starved


@pytest.mark.parametrize("sigma, channels, shared", [(0.4, 20, 8), (0.5, 40, 20), (0.25, 10, 3), (0.29, 100, 29),
                                                     (0.05, 10, 1)])
def test_partition_shares_round_sigma_c_and_deals_the_rest(sigma, channels, shared):
    masks, without = partition_masks(4, channels, sigma, np.random.default_rng(0))
    assert (masks.min(0) == 1).sum() == shared
    private = masks.sum(0) == 1
    assert private.sum() == channels - shared and (masks.sum(0) >= 1).all()
    per_task = masks[:, private].sum(1)
    assert per_task.max() - per_task.min() <= 1 and without == 0  # at least 4 channels are dealt to the 4 tasks


@pytest.mark.parametrize("sigma, channels, zeros", [(0.4, 20, 8), (0.29, 100, 29), (0.0, 16, 0), (0.99, 10, 9)])
def test_knockout_zeroes_floor_sigma_c_per_task(sigma, channels, zeros):
    masks = knockout_masks(6, channels, sigma, np.random.default_rng(0))
    assert ((masks == 0).sum(1) == zeros).all()
    if 0 < zeros < channels:  # independent permutations: the tasks do not all drop the same channels
        assert len({tuple(row) for row in masks}) > 1


def test_same_seed_same_masks_and_other_seed_other_masks(digits):
    for mode in ("partition", "knockout"):
        a = masks_of(build(digits, seed=3, mask_mode=mode)[1])
        b = masks_of(build(digits, seed=3, mask_mode=mode)[1])
        c = masks_of(build(digits, seed=4, mask_mode=mode)[1])
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_per_layer_sigma(digits):
    _, model = build(digits, sigma=[0.0, 1.0])
    first, second = masks_of(model)
    assert (first.sum(0) == 1).all() and second.min() == 1


def test_more_tasks_than_channels_warns_and_says_how():
    with pytest.warns(UserWarning, match="round-robin.*layer 1: 30 of 40 tasks"):
        masks = make_masks("partition", 40, [20, 40], [0.5, 0.5], seed=0)
    assert (masks[0].sum(1) == 11).sum() == 10 and (masks[0].sum(1) == 10).sum() == 30
    with pytest.warns(UserWarning, match="no channel at all"):
        make_masks("partition", 40, [20], [0.0], seed=0)


@pytest.mark.parametrize("sigma, message", [
    (-0.1, r"sigma must be in \[0.0, 1.0\], got -0.1"), (1.5, r"sigma must be in \[0.0, 1.0\], got 1.5"),
    (float("nan"), "sigma must be a number, got nan"), ("high", "sigma must be a number, got 'high'"),
    (True, "sigma must be a number, got True"), ([0.5, 2.0], r"sigma\[1\] must be in \[0.0, 1.0\], got 2.0"),
    ([], "non-empty list")])
def test_bad_sigma_is_a_clear_config_error(digits, sigma, message):
    with pytest.raises(ConfigError, match=message):
        TaskRouting(digits, {"sigma": sigma})


def test_sigma_list_of_wrong_length_names_the_routed_layers(digits):
    strategy = TaskRouting(digits, {"sigma": [0.5, 0.5, 0.5]})
    with pytest.raises(ValueError, match=r"sigma has 3 values but backbone cnn has 2 routed layers \(conv 1, conv 2\)"):
        strategy.build(get_backbone("cnn", digits.input_shape))
    for key, value in (("mask_mode", "random"), ("task_sampling", "some"), ("route_linear", "yes")):
        with pytest.raises(ConfigError, match=key):
            TaskRouting(digits, {key: value})


def test_sigma_list_of_wrong_length_stops_the_cli_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--strategy", "task_routing", "--dataset", "digits", "--out", str(out), "--quiet",
                 "--set", "sigma=[0.5,0.5,0.5]"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sigma has 3 values" in err
    assert not out.exists()


# the routing layer and the routed model


def test_masked_channels_get_zero_gradient(digits):
    _, model = build(digits, sigma=0.4)
    x = digits.train.tensors[0][:16]
    for tasks in (["is_3"], ["is_3", "is_7"]):
        model.zero_grad()
        out = model(x, tasks)
        sum(o.square().sum() for o in out.values()).backward()
        for unit, layer in model.routing_layers().items():
            used = layer.masks[[model.task_names.index(t) for t in tasks]].amax(0) > 0
            grad = model.trunk[unit].op.weight.grad.flatten(1).abs().sum(1)
            assert (grad[~used] == 0).all() and (grad[used] > 0).all()
            assert (model.trunk[unit].norm.weight.grad[~used] == 0).all()
    unused = [i for i, t in enumerate(model.task_names) if t not in ("is_3", "is_7")]
    assert all(model.heads.vectors[i].grad is None for i in unused)  # other tasks' branches are not touched


def test_masks_are_buffers_that_survive_a_state_dict_round_trip(digits):
    _, a = build(digits, seed=0)
    _, b = build(digits, seed=1)
    assert not any(name.endswith("masks") for name, _ in a.named_parameters())
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    assert all(np.array_equal(x, y) for x, y in zip(masks_of(a), masks_of(b)))


@pytest.mark.parametrize("mode", ["partition", "knockout"])
def test_batched_all_task_pass_equals_one_task_passes(digits, mode):
    _, model = build(digits, sigma=0.4, mask_mode=mode, route_linear=True)
    x = digits.val.tensors[0][:20]
    warmed_up(model, x)
    with torch.no_grad():
        together = model(x)
        model.fold_budget = 2 * model.widest * len(x)  # evaluation in chunks of two tasks, each one batched pass
        passes, run = [], model.run
        model.run = lambda x, tasks: passes.append(tasks) or run(x, tasks)
        chunked = model(x)
        del model.run  # back to the method
        assert [len(p) for p in passes] == [2] * 5
        for task in model.task_names:
            alone = model(x, [task])[task]
            assert torch.allclose(together[task], alone, atol=1e-5)
            assert torch.allclose(chunked[task], alone, atol=1e-5)


def test_batched_heads_equal_each_task_alone_in_training_mode():
    heads = TaskHeads(get_backbone("cnn", (1, 8, 8)).branch, 12, [1, 3, 1, 3])
    features = torch.randn(4, 8, 12)
    together = heads(features, [0, 1, 2, 3])
    for g in range(4):
        assert torch.allclose(together[g], heads(features[g:g + 1], [g])[0], atol=1e-6)


def test_eval_normalises_each_task_with_its_input_class_statistics():
    """Tasks 0 and 1 share an input class, task 2 sees other activations: eval must not mix 2 into 0 and 1."""
    norm = TaskBalancedBatchNorm(3, 3)
    norm.set_classes(np.array([0, 0, 1]))
    torch.manual_seed(0)
    shift = {0: 4.0, 1: 4.0, 2: -4.0}
    norm.train()
    for step in range(60):  # Algorithm 1: one task per batch
        task = step % 3
        norm.set_active([task], torch.tensor([task]))
        norm(torch.randn(64, 3, 4, 4) + shift[task])
    norm.eval()
    norm.set_active([0, 1, 2], torch.tensor([0, 1, 2]))
    x = torch.cat([torch.randn(64, 3, 4, 4) + shift[t] for t in range(3)])
    with torch.no_grad():
        y = norm(x).view(3, 64, 3, 4, 4)
    for t in range(3):  # weight 1, bias 0: each group comes out standardised (one mixture: means 0.68, -1.37)
        assert abs(float(y[t].mean())) < 0.1 and abs(float(y[t].std()) - 1) < 0.1, t
    mean, _ = norm.eval_statistics()
    assert torch.equal(mean[0], mean[1]) and not torch.allclose(mean[0], mean[2])


def test_disjoint_subnetworks_are_scored_with_their_own_statistics():
    """sigma=0 on multidigits: with one shared running average the tasks scored 0.47-0.59 (seeds 0-2)."""
    problem = load_problem("multidigits")
    strategy = get_strategy("task_routing")(problem, {"sigma": 0.0}, 0)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=6, lr=3e-3), quiet=True)
    trainer.fit()
    assert evaluate(trainer.model, problem, "test")["score"] >= 0.75


def test_routing_layer_fans_out_and_masks_each_group():
    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    layer = TaskRoutingLayer(masks, fans_out=True)
    layer.set_active([1, 0], torch.tensor([1, 0]))
    x = torch.ones(2, 3, 2, 2)
    out = layer(x)
    assert out.shape == (4, 3, 2, 2)
    assert torch.equal(out[:2, :, 0, 0], masks[[1, 1]]) and torch.equal(out[2:, :, 0, 0], masks[[0, 0]])


def test_unknown_or_repeated_tasks_are_refused(digits):
    _, model = build(digits)
    with pytest.raises(ValueError, match="unknown task.*'is_x'"):
        model(torch.zeros(2, 1, 8, 8), ["is_x"])
    with pytest.raises(ValueError, match="distinct"):
        model(torch.zeros(2, 1, 8, 8), ["is_1", "is_1"])


def test_task_sampling(digits):
    one = TaskRouting(digits, {})
    rng = np.random.default_rng(0)
    drawn = [one.batch_tasks(rng) for _ in range(500)]
    assert all(len(d) == 1 for d in drawn) and {d[0] for d in drawn} == set(digits.task_names)
    assert TaskRouting(digits, {"task_sampling": "all"}).batch_tasks(rng) is None


def test_many_tasks_add_only_heads():
    """312 binary tasks (UCSD-Birds attributes): same trunk as 10 tasks; a one-task step touches one head vector."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, many = build(binary_problem(312), sigma=0.4)
    _, few = build(binary_problem(10), sigma=0.4)
    trunk = lambda m: sum(p.numel() for p in m.trunk.parameters())
    assert trunk(many) == trunk(few)
    assert len(list(many.parameters())) == len(list(many.trunk.parameters())) + 312
    out = many(torch.randn(8, 1, 8, 8), ["t200"])
    out["t200"].sum().backward()
    touched = [i for i, v in enumerate(many.heads.vectors) if v.grad is not None]
    assert touched == [200]


# structure and frozen export


@pytest.mark.parametrize("mode", ["partition", "knockout"])
def test_frozen_structure_reproduces_every_task(digits, mode):
    strategy, model = build(digits, sigma=0.4, mask_mode=mode)
    x = digits.val.tensors[0][:24]
    warmed_up(model, x)
    structure, weights = strategy.structure(model)
    frozen = freeze(structure, weights).eval()
    with torch.no_grad():
        routed, out = model(x), frozen(x)
        for task in digits.task_names:
            assert torch.allclose(out[task], routed[task], atol=1e-5), task
        full = sum(p.numel() for p in frozen.parameters())
        for task in ("is_0", "is_9"):
            one = freeze(structure, weights, tasks=[task]).eval()
            assert sum(p.numel() for p in one.parameters()) < full
            assert torch.allclose(one(x)[task], routed[task], atol=1e-5)


def test_frozen_model_trains_like_the_routed_model(digits):
    """In training mode the frozen blocks normalise each input class with its own batch statistics, as the
    routed model does per task, so retraining a found structure starts from the same computation."""
    strategy, model = build(digits, sigma=0.4)
    x = digits.val.tensors[0][:32]
    warmed_up(model, x)
    structure, weights = strategy.structure(model)
    frozen = freeze(structure, weights)
    model.train(), frozen.train()
    with torch.no_grad():
        routed, out = model(x), frozen(x)
    for task in digits.task_names:
        assert torch.allclose(out[task], routed[task], atol=1e-4), task
    norm = frozen.blocks["trunk2_shared"].norm  # read by every task, each through its own layer-1 channels
    assert norm.running_mean.shape == (len(digits.task_names), 16)
    assert not torch.allclose(norm.running_mean[0], norm.running_mean[1])


def test_partition_structure_shows_the_sharing(digits):
    strategy, model = build(digits, sigma=0.4)
    structure, _ = strategy.structure(model)
    g = structure.graph
    layer1 = sorted(n for n, d in g.nodes(data=True) if d["layer"] == 1)
    assert layer1 == sorted(["trunk1_shared"] + [f"trunk1_only_{t}" for t in digits.task_names])
    assert g.nodes["trunk1_shared"]["width"] == 8 and g.nodes["trunk1_shared"]["tasks"] == digits.task_names
    assert sum(g.nodes[n]["width"] for n in layer1) == 20
    # weights of the shared conv-2 block are used by every task, each reading its own layer-1 channels
    assert g.edges["trunk1_shared", "trunk2_shared"]["tasks"] == digits.task_names
    assert g.edges["trunk1_only_is_3", "trunk2_shared"]["tasks"] == ["is_3"]
    assert g.edges["trunk1_shared", "trunk2_only_is_3"]["tasks"] == ["is_3"]
    assert not g.has_edge("trunk1_only_is_3", "trunk2_only_is_4")
    assert g.nodes["trunk3"]["tasks"] == digits.task_names  # the unrouted linear layer is one shared block
    assert g.edges["trunk3", "is_3_branch4"]["tasks"] == ["is_3"] and g.nodes["head_is_3"]["kind"] == "head"


def test_heterogeneous_tasks_and_vector_inputs_freeze_exactly():
    for problem, backbone in ((load_problem("multidigits"), "cnn"), (load_problem("synthetic"), None)):
        strategy, model = build(problem, sigma=0.3, backbone=backbone)
        x = problem.val.tensors[0][:16]
        warmed_up(model, x)
        assert model.routing_layers()  # the mlp trunk has no conv: its linear layers are routed
        structure, weights = strategy.structure(model)
        with torch.no_grad():
            routed, out = model(x), freeze(structure, weights).eval()(x)
        for task in problem.tasks:
            assert out[task.name].shape == (16, task.out_features)
            assert torch.allclose(out[task.name], routed[task.name], atol=1e-5), task.name


# learning


def test_train_cli_learns_digits_and_writes_an_exact_structure(tmp_path, digits):
    out = tmp_path / "run"
    code = main(["train", "--strategy", "task_routing", "--dataset", "digits", "--out", str(out), "--quiet",
                 "--set", "sigma=0.4", "--set", "epochs=15", "--set", "lr=0.003", "--set", "batch_size=32"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["score"] >= 0.95  # a one-vs-all majority guess scores 0.90
    assert [layer["shared"] for layer in metrics["routing"]["layers"]] == [8, 16]
    assert (out / "routing_masks.png").stat().st_size > 0
    strategy = TaskRouting(digits, {"sigma": 0.4})
    model = strategy.build(get_backbone("cnn", digits.input_shape))
    model.load_state_dict(torch.load(out / "checkpoint.pt")["weights"])
    model.eval()
    _, weights = strategy.structure(model)
    structure = SharingStructure.load_json(out / "structure.json")
    program = torch.export.load(out / "frozen" / "model.pt2").module()  # the exported frozen model: a task tuple
    x = digits.test.tensors[0]
    with torch.no_grad():
        routed, rebuilt, exported = model(x), freeze(structure, weights).eval()(x), program(x)
    for task, output in zip(digits.task_names, exported, strict=True):
        assert torch.allclose(output, routed[task], atol=1e-5)
        assert torch.allclose(rebuilt[task], routed[task], atol=1e-5)


def test_all_tasks_per_batch_learns_digits(digits):
    strategy = get_strategy("task_routing")(digits, {"sigma": 0.4, "task_sampling": "all"}, 0)
    trainer = Trainer(digits, strategy, TrainConfig(epochs=3), quiet=True)
    trainer.fit()
    assert evaluate(trainer.model, digits, "test")["score"] >= 0.95
