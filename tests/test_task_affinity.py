"""Task affinity: the look-ahead measurement, network selection, planted-group recovery, unrelated task families,
the switch to one trunk per group and exact resume."""
import copy
import itertools
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from mtlsearch.errors import UserError
from mtlsearch.problems import Problem, Task, load_problem
from mtlsearch.problems.data import tensor_dataset
from mtlsearch.run import train_run
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.task_affinity import TaskAffinity, choose_groups, total_affinity
from mtlsearch.strategies.task_affinity.lookahead import sample_batch, shared_parameters
from mtlsearch.structure import SharingStructure
from mtlsearch.structure.views import task_groups
from mtlsearch.training import TrainConfig, Trainer


def labels(groups, names):
    where = {t: k for k, g in enumerate(groups) for t in g}
    return [where[t] for t in names]


def partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]
        yield [[first]] + part


# network selection on hand-made matrices
def test_selection_finds_the_blocks_of_a_block_matrix_and_leaves_a_harmful_task_alone():
    z = np.full((7, 7), -0.01)
    for block in ([0, 3, 5], [1, 2], [4]):
        z[np.ix_(block, block)] = 0.2
    z[6, :] = z[:, 6] = -0.3  # task 6 hurts every other task and is hurt by them
    assert choose_groups(z, 4) == [[0, 3, 5], [1, 2], [4], [6]]
    fewer = choose_groups(z, 3)  # task 4 must join a group; 6 hurts every group more than it does
    assert len(fewer) == 3 and [6] in fewer
    assert choose_groups(z, 1) == [list(range(7))]


def test_selection_follows_the_direction_of_affinity():
    # 0 helps 1 a lot but 1 hurts 0 more: together they score 0.5 - 0.6 < 0 apart
    z = np.array([[0.0, 0.5, -0.1], [-0.6, 0.0, -0.1], [-0.1, -0.1, 0.0]])
    assert choose_groups(z, 3) == [[0], [1], [2]]
    z[1, 0] = -0.4
    assert choose_groups(z, 3) == [[0, 1], [2]]


def test_exact_selection_is_the_best_partition_within_the_group_budget():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(2, 8))
        k = int(rng.integers(1, n + 1))
        z = rng.normal(size=(n, n))
        best = max((p for p in partitions(list(range(n))) if len(p) <= k), key=lambda p: total_affinity(z, p))
        chosen = choose_groups(z, k)
        assert len(chosen) <= k and sorted(itertools.chain(*chosen)) == list(range(n))
        assert total_affinity(z, chosen) == pytest.approx(total_affinity(z, best))


def test_greedy_selection_beyond_twelve_tasks_recovers_clear_blocks():
    rng = np.random.default_rng(1)
    planted = rng.integers(0, 4, 16)
    z = np.where(planted[:, None] == planted[None, :], 0.3, -0.05) + rng.normal(0, 0.01, (16, 16))
    chosen = choose_groups(z, 4)
    assert adjusted_rand_score(planted, labels(chosen, range(16))) == 1.0


# the look-ahead measurement
def test_lookahead_equals_a_real_sgd_step_on_a_copy_and_leaves_the_model_alone():
    problem = load_problem("synthetic")
    strategy = TaskAffinity(problem, {"lookahead_lr": 0.05}, 0)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=1), seed=0, quiet=True)
    model = trainer.model.train()
    x, y = sample_batch(problem.train, 64, torch.Generator().manual_seed(0), "cpu")
    before = copy.deepcopy(model.state_dict())
    z = strategy.lookahead(model, x, y)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name  # weights and batch-norm statistics untouched
    shared = shared_parameters(model)
    assert shared and all(name.startswith("blocks.trunk") for name in shared)

    def losses(net):
        out = net(x)
        return torch.stack([t.loss(out[t.name], y[:, k]) for k, t in enumerate(problem.tasks)])

    base = losses(copy.deepcopy(model)).detach()
    for i in range(len(problem.tasks)):
        stepped = copy.deepcopy(model)
        params = dict(stepped.named_parameters())
        grads = torch.autograd.grad(losses(stepped)[i], [params[n] for n in shared])
        with torch.no_grad():
            for name, grad in zip(shared, grads):
                params[name] -= 0.05 * grad
            expected = 1 - losses(stepped) / base
        torch.testing.assert_close(z[i], expected, rtol=1e-4, atol=1e-6)


# learning
def test_recovers_the_planted_groups_at_the_easy_end_and_trains_one_trunk_per_group(tmp_path):
    metrics = train_run("synthetic:own=0", "task_affinity", tmp_path / "run", epochs=3, quiet=True,
                        settings={"switch_epoch": 2})
    problem = load_problem("synthetic:own=0")
    groups = metrics["final_groups"]
    assert adjusted_rand_score(problem.true_groups, labels(groups, problem.task_names)) == 1.0
    structure = SharingStructure.load_json(tmp_path / "run" / "structure.json")
    assert task_groups(structure, 1) == task_groups(structure, 2) == groups  # one trunk per group
    assert all(len(g) == 1 for g in task_groups(structure, 3))  # then every task's own branch
    z = np.array(metrics["task_affinity"])
    inside = [z[problem.task_names.index(a), problem.task_names.index(b)]
              for g in groups for a in g for b in g if a != b]
    outside = [z[i, j] for i, j in itertools.permutations(range(len(z)), 2)
               if problem.true_groups[i] != problem.true_groups[j]]
    assert min(inside) > max(outside)  # every planted pair's affinity above every unrelated pair's
    assert metrics["affinity_history"][1]["groups"] == groups and metrics["affinity_measurements"] > 0
    assert metrics["test"]["score"] > 0.7
    assert (tmp_path / "run" / "task_affinity.png").is_file()
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["groups"] == groups


def with_noise_task(problem: Problem, seed: int = 0) -> Problem:
    """The problem plus a binary task whose labels are coin flips, independent of the input."""
    rng = np.random.default_rng(seed)

    def add(split):
        x, y = split.tensors
        return tensor_dataset(x.numpy(), np.concatenate([y.numpy(), rng.integers(0, 2, (len(y), 1))], 1))

    return Problem(problem.name + "+noise", [*problem.tasks, Task("noise", "binary")], add(problem.train),
                   add(problem.val), add(problem.test), problem.input_shape)


def test_affinity_puts_a_noise_task_apart_from_the_digit_tasks():
    problem = with_noise_task(load_problem("multidigits"))
    strategy = TaskAffinity(problem, {"switch_epoch": 1, "affinity_every": 2, "affinity_batch": 128}, 0)
    Trainer(problem, strategy, TrainConfig(epochs=1, backbone="mlp"), seed=0, quiet=True).fit()
    z = strategy.affinity()
    names = problem.task_names
    noise = names.index("noise")
    related = [("left_digit", "left_is_even"), ("right_digit", "right_is_large")]
    for a, b in related:
        assert z[names.index(a), names.index(b)] > 0 and z[names.index(b), names.index(a)] > 0
    digits = [i for i in range(len(names)) if i != noise]
    onto_noise, from_noise = z[digits, noise], z[noise, digits]
    helped = min(z[names.index(a), names.index(b)] for pair in related for a, b in (pair, pair[::-1]))
    assert max(onto_noise.max(), from_noise.max()) < helped / 3
    assert ["noise"] in strategy.groups


# the switch, export and resume
def test_a_run_that_ends_before_the_switch_stays_hard_sharing():
    problem = load_problem("synthetic:n_samples=1200")
    strategy = TaskAffinity(problem, {"switch_epoch": 3}, 0)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=1), seed=0, quiet=True)
    trainer.fit()
    assert strategy.report()["final_groups"] is None and strategy.report()["affinity_measurements"] > 0
    structure, _ = strategy.structure(trainer.model)
    assert task_groups(structure, 1) == [structure.task_names]


def test_bad_settings_and_one_task_are_refused():
    problem = load_problem("synthetic")
    with pytest.raises(UserError, match=r"groups must be in \[1, inf\], got 0"):
        TaskAffinity(problem, {"groups": 0})
    with pytest.raises(UserError, match=r"lookahead_lr must be in \(0.0, inf\], got 0.0"):
        TaskAffinity(problem, {"lookahead_lr": 0.0})
    one = Problem("one", problem.tasks[:1], problem.train, problem.val, problem.test, problem.input_shape)
    with pytest.raises(UserError, match="needs at least 2"):
        TaskAffinity(one)
    with pytest.raises(UserError, match="cover each task once"):
        TaskAffinity(problem).build(get_strategy("task_affinity")(problem).backbone(None), {"groups": [["task_0"]]})


class Interrupted(Exception):
    pass


def without_seconds(value):
    """Reports hold wall-clock seconds; everything else must match exactly."""
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [without_seconds(v) for v in value]
    return value


@pytest.mark.parametrize("stop", [1, 2])  # before the switch (measurements half way) and after it
def test_resume_from_a_checkpoint_equals_training_straight(stop):
    problem = load_problem("synthetic:n_samples=1200")
    settings = {"switch_epoch": 2, "affinity_every": 3}

    def trainer():
        return Trainer(problem, TaskAffinity(problem, settings, 0), TrainConfig(epochs=3), seed=0, quiet=True)

    straight = trainer()
    straight.fit()
    saved = {}

    def stop_after(tr, record):
        if record["epoch"] == stop:
            saved["state"] = copy.deepcopy(tr.state_dict())
            raise Interrupted

    part = trainer()
    part.on_epoch = stop_after
    with pytest.raises(Interrupted):
        part.fit()
    resumed = trainer()
    resumed.load_state_dict(saved["state"])
    resumed.fit()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name

    assert without_seconds(straight.strategy.report()) == without_seconds(resumed.strategy.report())
    assert straight.strategy.architecture_state() == resumed.strategy.architecture_state()
