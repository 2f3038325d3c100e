"""Bad input ends in exit status 2, one line naming what is wrong and what is valid, and nothing left behind."""
from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlsearch.cli import main
from mtlsearch.run import prepare_out_dir

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(capsys, tmp_path, argv: list[str], message: str) -> str:
    """Exit 2 with one line holding `message`; tmp_path holds what it held before (nothing half-written)."""
    before = listing(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err
    assert listing(tmp_path) == before
    return err


def train(tmp_path, *args) -> list[str]:
    return ["train", "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet", *args]


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
    (["--device", "nonsense"], "--device 'nonsense' is not a device name; valid here: cpu"),
    (["--device", "cuda:7"], "--device 'cuda:7' is not on this machine; valid here: cpu"),
])
def test_bad_train_options(tmp_path, capsys, args, message):
    if "cuda:7" in args and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU cuda:7")
    refused(capsys, tmp_path, train(tmp_path, *args), message)


def test_out_under_a_file_or_where_it_cannot_be_made(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a directory")
    refused(capsys, tmp_path, ["train", "--out", str(tmp_path / "afile" / "sub"), "--epochs", "1", "--quiet"],
            f"--out {tmp_path / 'afile' / 'sub'} is under {tmp_path / 'afile'}, a file; give a path under a directory")
    too_long = tmp_path / "new" / ("x" * 300) / "out"  # "new" can be made, its child cannot: "new" must not stay
    refused(capsys, tmp_path, ["train", "--out", str(too_long), "--epochs", "1", "--quiet"], "cannot be created")
    if Path("/proc/self").is_dir():  # no directory can be made in /proc, whoever runs the test
        refused(capsys, tmp_path, ["train", "--out", "/proc/mtlsearch-test/out", "--epochs", "1", "--quiet"],
                "--out /proc/mtlsearch-test/out cannot be created")


def test_out_under_missing_parents_is_made_as_mkdir_p_does(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    assert prepare_out_dir(out, overwrite=False) == out and out.is_dir()
    # a bad input found before training leaves none of those parents
    refused(capsys, tmp_path, ["train", "--out", str(tmp_path / "c" / "d" / "run"), "--seed", "-1"], "--seed")


def npz(tmp_path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def rows(n: int, tasks: int = 2):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 4)), "y": rng.integers(0, 2, (n, tasks)).astype(float)}


@pytest.mark.parametrize("arrays, message", [
    (rows(0), "data.npz: 'x' has no rows; the train, validation and test splits each need at least one"),
    (rows(5), "data.npz: 'x' has 5 examples: the seeded 80/10/10 split would give 4 train, 0 validation and 1 test "
              "examples; every split needs at least one, so give at least 8 (or give x_val, y_val, x_test and y_test)"),
    (rows(50, tasks=0), "data.npz: 'y' has no columns, so there are no tasks; 'y' [N, T] needs one column per task"),
    ({**rows(50), "x_val": rows(5)["x"], "y_val": rows(5)["y"]},
     "data.npz has x_val, y_val but no x_test, y_test: give all of x_val, y_val, x_test and y_test, or none of them "
     "for a seeded 80/10/10 split"),
    ({**rows(50), "x_val": rows(5)["x"], "y_val": rows(5, tasks=3)["y"], "x_test": rows(5)["x"],
      "y_test": rows(5)["y"]}, "data.npz: 'y_val' has 3 label columns but 'y' has 2; every split needs one column "
                               "per task"),
    ({**rows(50), "x_val": rows(0)["x"], "y_val": rows(0)["y"], "x_test": rows(5)["x"], "y_test": rows(5)["y"]},
     "data.npz: 'x_val' has no rows"),
])
def test_bad_npz(tmp_path, capsys, arrays, message):
    refused(capsys, tmp_path, train(tmp_path, "--dataset", npz(tmp_path, **arrays)), message)


def test_random_bytes_are_not_called_pickled_data(tmp_path, capsys):
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(300))
    err = refused(capsys, tmp_path, train(tmp_path, "--dataset", str(tmp_path / "random.npz")),
                  "random.npz: not a readable .npz file (it is not a zip of .npy arrays, which numpy.savez writes)")
    assert "pickle" not in err
    np.savez(tmp_path / "objects.npz", x=np.ones((20, 2)), y=np.array([{"a": 1}] * 20, dtype=object))
    err = refused(capsys, tmp_path, train(tmp_path, "--dataset", str(tmp_path / "objects.npz")),
                  "objects.npz: array 'y' holds Python objects, which are not loaded")
    assert "allow_pickle" not in err


USER_DATA = """
    import torch

    def raises():
        raise RuntimeError("the data server is down")

    number = 5

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return torch.zeros(3), torch.tensor([i % 2], dtype=torch.float32)

    class Triples(Pairs):
        def __getitem__(self, i):
            return torch.zeros(3), torch.zeros(1), i

    class Broken(Pairs):
        def __getitem__(self, i):
            if i == 7:
                raise KeyError("row 7 was deleted")
            return super().__getitem__(i)

    triples, broken = Triples(), Broken()
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "bad_input_data.py").write_text(textwrap.dedent(USER_DATA))
    monkeypatch.syspath_prepend(str(code))
    return "bad_input_data"


@pytest.mark.parametrize("attribute, message", [
    ("raises", "dataset 'bad_input_data:raises': calling raises() raised RuntimeError: the data server is down "
               "(--debug shows its traceback)"),
    ("number", "dataset 'bad_input_data:number': it is of type int; expected a Problem, a torch Dataset of (x, y), "
               "or a function or class returning one"),
    ("triples", "dataset 'bad_input_data:triples': item 0 is a 3-tuple; each item must be a pair (x, y)"),
    ("broken", "dataset 'bad_input_data:broken': reading item 7 (dataset[7]) raised KeyError: 'row 7 was deleted' "
               "(--debug shows its traceback)"),
    ("missing", "cannot load dataset 'bad_input_data:missing': module 'bad_input_data' has no attribute 'missing'"),
])
def test_bad_user_dataset(tmp_path, capsys, user_module, attribute, message):
    refused(capsys, tmp_path, train(tmp_path, "--dataset", f"{user_module}:{attribute}"), message)


def test_debug_shows_the_traceback_of_the_users_code(tmp_path, capsys, user_module):
    for argv in (train(tmp_path, "--dataset", f"{user_module}:broken", "--debug"),
                 ["--debug", *train(tmp_path, "--dataset", f"{user_module}:broken")]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "bad_input_data.py" in err and 'raise KeyError("row 7 was deleted")' in err
        assert err.splitlines()[-1].endswith("raised KeyError: 'row 7 was deleted'")
    assert not (tmp_path / "out").exists()


def test_a_dataset_class_is_instantiated(tmp_path, user_module):
    from mtlsearch.problems import load_problem

    assert sum(load_problem(f"{user_module}:Pairs").sizes().values()) == 20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, single_thread_torch):
    out = tmp_path_factory.mktemp("bad_input") / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--quiet", "--set", "batch_size=256"]) == 0
    return out


def test_one_structure_rule_for_show_export_and_retrain(run_dir, tmp_path, capsys):
    """A run directory's structure is its own structure.json: a damaged one is refused by every command, an
    edited one is what every command reads."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    text = (run / "structure.json").read_text()
    (run / "structure.json").write_text(text[: len(text) // 2])
    for command in (["show", str(run)], ["export", str(run)],
                    ["retrain", str(run), "--epochs", "1", "--out", str(tmp_path / "again")]):
        refused(capsys, tmp_path, command, "not a valid node-link structure file")
    data = json.loads(text)
    data["graph"]["metrics"]["test_score"] = 0.125
    (run / "structure.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["show", str(run)]) == 0 and "test_score 0.125" in capsys.readouterr().out
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    exported = json.loads((tmp_path / "exported" / "structure.json").read_text())
    assert exported["graph"]["metrics"]["test_score"] == 0.125
    os.remove(run / "structure.json")  # without its own, a run directory's frozen/ copy is the structure
    assert main(["show", str(run)]) == 0


def test_training_that_diverges_ends_in_one_line_naming_the_setting(capsys, tmp_path):
    """The loss turning NaN is the settings' doing (here the learning rate): exit 2, one line, no traceback."""
    capsys.readouterr()
    assert main(train(tmp_path, "--set", "lr=1e30")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss became nan" in err and "lr" in err and "Traceback" not in err, err
