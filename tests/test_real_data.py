"""Real data without a download (mnist-5k, multimnist), the planted problem's knob, spec parameters, and scores
robust to class imbalance."""
import numpy as np
import pytest
import torch

from mtlsearch.errors import ConfigError, UserError
from mtlsearch.problems import Problem, Task, load_problem, score
from mtlsearch.problems.data import tensor_dataset
from mtlsearch.problems.mnist_5k import mnist_5k_images
from mtlsearch.problems.multimnist import multimnist, pair_sources
from mtlsearch.problems.parameters import describe
from mtlsearch.settings import split_settings
from mtlsearch.strategies import get_strategy
from mtlsearch.training import TrainConfig, Trainer


def test_mnist_5k_is_real_28x28_digits_as_ten_one_vs_all_tasks():
    p = load_problem("mnist-5k")
    assert p.task_names == [f"is_{d}" for d in range(10)] and all(t.type == "binary" for t in p.tasks)
    assert p.input_shape == (1, 28, 28) and p.sizes() == {"train": 4000, "val": 500, "test": 500}
    x, y = p.train.tensors
    assert x.shape == (4000, 1, 28, 28) and x.min() == 0 and x.max() == 1
    assert torch.equal(y.sum(1), torch.ones(4000))  # one digit per image
    images, labels = mnist_5k_images()
    assert np.bincount(labels).tolist() == [500] * 10
    assert torch.equal(load_problem("mnist-5k").test.tensors[0], p.test.tensors[0])  # a fixed split


def test_multimnist_labels_follow_the_two_digits():
    p = load_problem("multimnist:pairs=500")
    assert p.sizes() == {"train": 500, "val": 100, "test": 100} and p.input_shape == (1, 28, 28)
    assert [(t.name, t.type, t.out_features) for t in p.tasks] == [
        ("left_digit", "multiclass", 10), ("right_digit", "multiclass", 10), ("left_is_even", "binary", 1),
        ("sum_above_9", "binary", 1), ("digit_sum", "regression", 1), ("right_is_large", "binary", 1)]
    x, y = p.train.tensors
    assert x.shape == (500, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    left, right = y[:, 0], y[:, 1]
    assert set(left.unique().tolist()) == set(range(10)) and set(right.unique().tolist()) == set(range(10))
    assert torch.equal(y[:, 2], (left % 2 == 0).float()) and torch.equal(y[:, 3], (left + right > 9).float())
    assert torch.allclose(y[:, 4], (left + right - 9) / 4) and torch.equal(y[:, 5], (right >= 5).float())
    _, labels = mnist_5k_images()
    for (a, b), split in zip(pair_sources(500, 0), (p.train, p.val, p.test)):
        assert torch.equal(split.tensors[1][:, :2], torch.as_tensor(np.stack([labels[a], labels[b]], 1)).float())


def test_multimnist_test_digits_never_appear_in_training_images():
    train, val, test = ({int(i) for side in split for i in side} for split in pair_sources(10000, 0))
    assert not train & test and not train & val and not val & test
    assert len(train) > 3900 and max(train | val | test) < 5000


def test_multimnist_is_seeded():
    a, b, c = load_problem("multimnist:pairs=50"), load_problem("multimnist:pairs=50"), load_problem(
        "multimnist:pairs=50,seed=1")
    assert torch.equal(a.train.tensors[0], b.train.tensors[0]) and torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])


def test_synthetic_hides_its_groups_and_the_knob_weakens_them():
    def within(p):
        """Mean correlation of the labels of two tasks of one planted group."""
        corr = np.corrcoef(p.train.tensors[1].numpy().T)
        g = p.true_groups
        return np.mean([corr[i, j] for i in range(len(g)) for j in range(i) if g[i] == g[j]])

    orders = set()
    for seed in range(4):
        p = load_problem(f"synthetic:seed={seed}")
        assert p.task_names == [f"task_{t}" for t in range(8)] and {t.type for t in p.tasks} == {"binary", "regression"}
        assert p.true_groups[0] == 0 and max(p.true_groups) == 3  # numbered as the groups first appear
        orders.add(tuple(p.true_groups))
    assert len(orders) > 1 and (0, 1, 2, 3, 0, 1, 2, 3) not in orders  # the order of tasks says nothing
    assert within(load_problem("synthetic:own=0")) > within(load_problem("synthetic:own=1")) > within(
        load_problem("synthetic:own=3")) + 0.2


def test_spec_parameters_and_their_errors():
    p = load_problem("synthetic:own=1.2,seed=3,n_samples=300")
    assert p.info == {"own": 1.2, "noise": 0.3, "seed": 3} and p.sizes() == {"train": 240, "val": 30, "test": 30}
    assert describe(multimnist) == "pairs=10000,seed=0"
    for spec, message in [("synthetic:depth=3", "no parameter 'depth'; valid: n_tasks, n_groups"),
                          ("synthetic:own=much", "parameter own takes a number, got 'much'"),
                          ("synthetic:own=inf", "takes a number"),
                          ("multimnist:pairs=2.5", "parameter pairs takes a whole number"),
                          ("synthetic:own", "key=value separated by commas"),
                          ("synthetic:own=-1", "synthetic needs own >= 0"),
                          ("multimnist:pairs=3", "pairs >= 5"), ("digits:seed=1", "valid: none")]:
        with pytest.raises(UserError, match=message):
            load_problem(spec)


def test_binary_tasks_are_scored_by_balanced_accuracy_unless_chosen_otherwise():
    always_no, target = np.zeros(10, dtype=int), np.array([1] + [0] * 9)
    metrics = Task("b", "binary").metrics(always_no, target)
    assert metrics["accuracy"] == 0.9 and metrics["balanced_accuracy"] == 0.5 and metrics["f1"] == 0.0
    assert score({"b": metrics}, [Task("b", "binary")]) == 0.5
    assert score({"b": metrics}, [Task("b", "binary", metric="accuracy")]) == 0.9
    assert Task("b", "binary", metric="f1").to_dict() == {"name": "b", "type": "binary", "num_classes": 2}
    with pytest.raises(UserError, match="multiclass task 'm' cannot be scored by 'f1'; valid: accuracy"):
        Task("m", "multiclass", 3, metric="f1")


def test_metric_setting_rescores_the_binary_tasks_of_a_run():
    x = torch.randn(30, 4)
    data = tensor_dataset(x.numpy(), np.stack([(x[:, 0] > 1).numpy(), x[:, 1].numpy()], 1))
    problem = Problem("tiny", [Task("rare", "binary"), Task("value", "regression")], data, data, data, (4,))
    config, _ = split_settings({"metric": "f1", "epochs": 1}, get_strategy("hard_sharing"))
    trainer = Trainer(problem, get_strategy("hard_sharing")(problem, {}, 0), config, quiet=True)
    assert [t.primary_metric for t in trainer.problem.tasks] == ["f1", "r2"]
    assert [t.primary_metric for t in problem.tasks] == ["balanced_accuracy", "r2"]
    assert TrainConfig().metric is None
    with pytest.raises(ConfigError, match="metric must be one of balanced_accuracy, f1, accuracy"):
        split_settings({"metric": "auc"}, get_strategy("hard_sharing"))
