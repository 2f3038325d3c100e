"""Datasets' shapes and task specs, metrics and the score."""
import numpy as np
import pytest
import torch

from mtlsearch.errors import UserError
from mtlsearch.problems import Task, load_problem, score
from mtlsearch.problems.data import batches


def test_digits_is_ten_one_vs_all_tasks():
    p = load_problem("digits")
    assert [t.name for t in p.tasks] == [f"is_{d}" for d in range(10)]
    assert all(t.type == "binary" for t in p.tasks)
    assert p.input_shape == (1, 8, 8)
    assert p.sizes() == {"train": 1438, "val": 180, "test": 179}
    x, y = p.train.tensors
    assert x.shape == (1438, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(y.sum(1), torch.ones(1438))  # exactly one digit is on per image


def test_digits_split_is_fixed():
    a, b = load_problem("digits"), load_problem("digits")
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])


def test_multidigits_tasks_follow_the_two_digits():
    p = load_problem("multidigits")
    assert p.input_shape == (1, 8, 16)
    kinds = {t.name: (t.type, t.out_features) for t in p.tasks}
    assert kinds == {"left_digit": ("multiclass", 10), "right_digit": ("multiclass", 10), "left_is_even": ("binary", 1),
                     "sum_above_9": ("binary", 1), "digit_sum": ("regression", 1), "right_is_large": ("binary", 1)}
    y = p.train.tensors[1]
    left, right = y[:, 0], y[:, 1]
    assert torch.equal(y[:, 2], (left % 2 == 0).float())
    assert torch.equal(y[:, 3], (left + right > 9).float())
    assert torch.allclose(y[:, 4], (left + right - 9) / 4)
    assert torch.equal(y[:, 5], (right >= 5).float())


def test_multidigits_splits_share_no_digit_image():
    p = load_problem("multidigits")
    halves = lambda ds: {tuple(h.flatten().tolist()) for x in ds.tensors[0] for h in (x[..., :8], x[..., 8:])}
    assert not halves(p.train) & halves(p.test)


def test_synthetic_records_planted_groups_and_groups_share_nothing():
    p = load_problem("synthetic:own=0")  # no task-own part: what a task shares is its group's function alone
    assert sorted(p.true_groups) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert {t.type for t in p.tasks} == {"binary", "regression"}
    y = p.train.tensors[1].numpy()
    corr = np.corrcoef(y.T)
    same = [corr[i, j] for i in range(8) for j in range(8) if i != j and p.true_groups[i] == p.true_groups[j]]
    other = [corr[i, j] for i in range(8) for j in range(8) if p.true_groups[i] != p.true_groups[j]]
    assert min(same) > 0.6 and max(np.abs(other)) < 0.15  # 0/1 labels of a shared latent correlate below 1


def test_task_metrics_and_score():
    binary, multi, reg = Task("b", "binary"), Task("m", "multiclass", 3), Task("r", "regression")
    mb = binary.metrics(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert mb == pytest.approx({"accuracy": 0.75, "balanced_accuracy": 0.75, "precision": 2 / 3, "recall": 1.0,
                                "f1": 0.8})
    assert multi.metrics(np.array([0, 2, 1]), np.array([0, 2, 2])) == pytest.approx({"accuracy": 2 / 3})
    mr = reg.metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert mr["mae"] == pytest.approx(1 / 3) and mr["r2"] == pytest.approx(1 - 1 / (14 / 3))
    assert score({"b": mb, "m": {"accuracy": 0.5}, "r": mr}, [binary, multi, reg]) == pytest.approx(
        (0.75 + 0.5 + mr["r2"]) / 3)


def test_task_losses_match_their_type():
    assert Task("b", "binary").loss(torch.zeros(4, 1), torch.ones(4)) == pytest.approx(np.log(2))
    assert Task("m", "multiclass", 4).loss(torch.zeros(2, 4), torch.tensor([1.0, 3.0])) == pytest.approx(np.log(4))
    assert Task("r", "regression").loss(torch.ones(3, 1), torch.zeros(3)) == pytest.approx(1.0)


def test_bad_task_type_is_refused():
    with pytest.raises(UserError, match="unknown type 'ordinal'"):
        Task("x", "ordinal")


def test_batches_cover_the_data_once_in_seeded_order():
    p = load_problem("digits")
    seen = [y for _, y in batches(p.train, 100, shuffle=True, generator=torch.Generator().manual_seed(1))]
    again = [y for _, y in batches(p.train, 100, shuffle=True, generator=torch.Generator().manual_seed(1))]
    assert sum(len(y) for y in seen) == 1438
    assert all(torch.equal(a, b) for a, b in zip(seen, again))


def test_python_dataset_entry(tmp_path, monkeypatch):
    module = tmp_path / "userdata.py"
    module.write_text(
        "import torch\n"
        "class Pairs(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 30\n"
        "    def __getitem__(self, i):\n"
        "        return torch.full((4,), float(i)), torch.tensor([i % 2, i % 3], dtype=torch.float32)\n"
        "data = Pairs()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = load_problem("userdata:data")
    assert [(t.type, t.out_features) for t in p.tasks] == [("binary", 1), ("multiclass", 3)]
    assert p.input_shape == (4,) and sum(p.sizes().values()) == 30
