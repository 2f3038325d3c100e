"""`mtlsearch train` structure files, and the `show`, `export` and `retrain` commands, with their bad inputs."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from mtlsearch.cli import main
from mtlsearch.structure import load_frozen, views

pytestmark = pytest.mark.usefixtures("single_thread_torch")
TRAIN_FILES = ["config.json", "metrics.json", "checkpoint.pt", "structure.json", "structure.graphml", "structure.png",
               "affinity.png", "frozen"]
FROZEN_FILES = ["model.pt2", "structure.json", "tasks.json", "weights.safetensors"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, single_thread_torch):
    out = tmp_path_factory.mktemp("structure_cli") / "hard"
    assert main(["train", "--strategy", "hard_sharing", "--dataset", "digits", "--epochs", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def metrics_of(directory) -> dict:
    return json.loads((directory / "metrics.json").read_text())


def fails(capsys, argv: list[str], message: str) -> str:
    """Run the CLI expecting exit status 2 and a one-line error containing `message`."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    return err


def test_train_writes_structure_pictures_and_frozen_model(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= set(TRAIN_FILES)
    assert sorted(p.name for p in (run_dir / "frozen").iterdir()) == FROZEN_FILES
    graph = json.loads((run_dir / "structure.json").read_text())["graph"]
    metrics = metrics_of(run_dir)
    assert (graph["metrics"]["test_score"] == metrics["test"]["score"]
            and graph["metrics"]["params"] == metrics["params"])


def test_show_prints_the_summary(run_dir, capsys):
    for target in (run_dir, run_dir / "frozen", run_dir / "structure.graphml"):
        capsys.readouterr()
        assert main(["show", str(target)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("strategy hard_sharing, 10 tasks, 34 blocks, 820,010 parameters")
        assert "is_7       194,501" in out
        layers = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
        assert [(row[0], row[1], row[-3:]) for row in layers] == [
            ("1", "conv", ["1.00", "all", "together"]), ("2", "conv", ["1.00", "all", "together"]),
            ("3", "linear", ["1.00", "all", "together"]), ("4", "branch", ["0.00", "all", "apart"]),
            ("5", "branch", ["0.00", "all", "apart"]), ("6", "head", ["0.00", "all", "apart"])]


def test_export_keeps_only_the_requested_tasks(run_dir, capsys):
    assert main(["export", str(run_dir), "--tasks", "is_3, is_0"]) == 0
    out = run_dir / "frozen_is_0+is_3"
    assert sorted(p.name for p in out.iterdir()) == FROZEN_FILES
    small, full = load_frozen(out), load_frozen(run_dir)
    assert small.task_names == ["is_0", "is_3"]
    assert "metrics" in full.structure.graph.graph and "metrics" not in small.structure.graph.graph  # not its own
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small == views.total_params(small.structure) < views.total_params(full.structure)
    assert f"{n_small:,} parameters" in capsys.readouterr().out
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        want, got = full.eval()(x), small.eval()(x)
        program = torch.export.load(out / "model.pt2").module()(x)
    for i, task in enumerate(small.task_names):
        torch.testing.assert_close(got[task], want[task], atol=1e-5, rtol=0)
        torch.testing.assert_close(program[i], want[task], atol=1e-5, rtol=0)
    fails(capsys, ["export", str(run_dir), "--tasks", "is_0,is_3"], "exists and is not empty; pass --overwrite")
    assert main(["export", str(run_dir), "--tasks", "is_0,is_3", "--overwrite"]) == 0


def test_export_refuses_unknown_tasks_and_missing_weights(run_dir, tmp_path, capsys):
    err = fails(capsys, ["export", str(run_dir), "--tasks", "is_0,is_42"], "unknown task(s) is_42; valid: is_0, is_1")
    assert not (run_dir / "frozen_is_0+is_42").exists(), err
    fails(capsys, ["export", str(run_dir), "--tasks", ","], "unknown task(s) (none given)")
    fails(capsys, ["export", str(tmp_path)], "holds no structure.json and weights.safetensors")


def test_retrain_from_scratch_reaches_the_direct_training_band(run_dir, tmp_path):
    out = tmp_path / "again"
    assert main(["retrain", str(run_dir), "--epochs", "2", "--from-scratch", "--seed", "1", "--out", str(out),
                 "--quiet"]) == 0
    direct, again = metrics_of(run_dir), metrics_of(out)
    assert {p.name for p in out.iterdir()} >= set(TRAIN_FILES)
    assert set(direct) <= set(again) and again["retrain"]["mode"] == "scratch"
    assert again["params"] == direct["params"] and len(again["history"]) == 2
    assert direct["test"]["score"] > 0.97 and again["test"]["score"] > 0.97
    assert abs(again["test"]["score"] - direct["test"]["score"]) < 0.015
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "digits" and config["strategy"] == "hard_sharing" and config["seed"] == 1


def test_retrain_finetune_starts_from_the_saved_weights(run_dir, tmp_path):
    out = tmp_path / "tuned"
    assert main(["retrain", str(run_dir), "--epochs", "1", "--finetune", "--set", "lr=1e-8", "--out", str(out),
                 "--quiet"]) == 0
    tuned = metrics_of(out)
    # with this learning rate a fresh initialisation stays near 0.47 on val; the run's weights keep its 0.99
    assert tuned["retrain"]["mode"] == "finetune"
    assert abs(tuned["val"]["score"] - metrics_of(run_dir)["val"]["score"]) < 0.01


def test_retrain_a_frozen_export_of_two_tasks(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--tasks", "is_2,is_5", "--out", str(tmp_path / "two")]) == 0
    fails(capsys, ["retrain", str(tmp_path / "two"), "--epochs", "1", "--out", str(tmp_path / "r")],
          "no config.json naming the dataset")
    assert main(["retrain", str(tmp_path / "two"), "--dataset", "digits", "--epochs", "1", "--finetune",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 0
    metrics = metrics_of(tmp_path / "r")
    assert sorted(metrics["test"]["tasks"]) == ["is_2", "is_5"] and metrics["test"]["score"] > 0.95
    fails(capsys, ["retrain", str(tmp_path / "two"), "--dataset", "multidigits", "--epochs", "1",
                   "--out", str(tmp_path / "m")], "the structure's task 'is_2' is not a task of dataset 'multidigits'")


def test_bad_structure_and_weight_files_exit_2(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "frozen", broken)
    shutil.copy(run_dir / "config.json", broken / "config.json")
    text = (broken / "structure.json").read_text()
    (broken / "structure.json").write_text(text[: len(text) // 3])
    for command in (["show", str(broken)], ["export", str(broken)],
                    ["retrain", str(broken), "--epochs", "1", "--out", str(tmp_path / "o")]):
        fails(capsys, command, "not a valid node-link structure file")
    data = json.loads(text)
    del data["graph"]["input_shape"]
    (broken / "structure.json").write_text(json.dumps(data))
    fails(capsys, ["show", str(broken)], "graph attribute(s) input_shape missing")
    (broken / "structure.json").write_text(text)
    shutil.copy(load_weights_elsewhere(run_dir, tmp_path), broken / "weights.safetensors")
    fails(capsys, ["retrain", str(broken), "--epochs", "1", "--finetune", "--out", str(tmp_path / "o")],
          "weights do not match the structure")
    fails(capsys, ["export", str(broken)], "weights do not match the structure")
    assert not (tmp_path / "o").exists()


def load_weights_elsewhere(run_dir, tmp_path):
    """The weights of a two-task export: a valid file that does not fit the ten-task structure."""
    assert main(["export", str(run_dir), "--tasks", "is_1,is_4", "--out", str(tmp_path / "w")]) == 0
    return tmp_path / "w" / "weights.safetensors"
