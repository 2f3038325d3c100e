"""User data as .npz: loading, inferred task types, and every malformed file refused before training."""
import numpy as np
import pytest

from mtlsearch.errors import UserError
from mtlsearch.problems import load_problem


def write(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def good(n=50):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 6)).astype(np.float32),
            "y": np.stack([rng.integers(0, 2, n), rng.integers(0, 4, n), rng.standard_normal(n)], 1)}


def test_npz_with_names_and_types(tmp_path):
    p = load_problem(write(tmp_path, **good(), task_names=np.array(["a", "b", "c"]),
                           task_types=np.array(["binary", "multiclass", "regression"])))
    assert [(t.name, t.type, t.out_features) for t in p.tasks] == [("a", "binary", 1), ("b", "multiclass", 4),
                                                                   ("c", "regression", 1)]
    assert p.sizes() == {"train": 40, "val": 5, "test": 5}
    assert p.input_shape == (6,)


def test_npz_infers_types_and_uses_given_splits(tmp_path):
    data = good()
    p = load_problem(write(tmp_path, **data, x_val=data["x"][:7], y_val=data["y"][:7], x_test=data["x"][:9],
                           y_test=data["y"][:9]))
    assert [t.type for t in p.tasks] == ["binary", "multiclass", "regression"]
    assert p.sizes() == {"train": 50, "val": 7, "test": 9}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("x"), "has no array 'x'"),
    (lambda d: d.update(y=d["y"][:-3]), "'x' has 50 rows but 'y' has 47"),
    (lambda d: d["x"].__setitem__((3, 2), np.nan), "NaN or inf"),
    (lambda d: d["x"].__setitem__((3, 2), np.inf), "NaN or inf"),
    (lambda d: d.update(task_types=np.array(["binary", "ordinal", "regression"])), "unknown type 'ordinal'"),
    (lambda d: d.update(task_types=np.array(["binary", "binary", "regression"])), "binary task 'task_1' has labels"),
    (lambda d: d.update(task_names=np.array(["a", "b"])), "2 task_names for 3 label columns"),
])
def test_malformed_npz_is_refused_with_the_problem_named(tmp_path, change, message):
    data = good()
    change(data)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_problem(write(tmp_path, **data))


def test_not_an_npz_file(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_problem(str(path))
