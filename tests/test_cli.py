"""The command line through a subprocess: what train writes, the listings, and bad input (exit 2, nothing lost)."""
import json
import subprocess
import sys

import numpy as np
import pytest


def mtlsearch(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mtlsearch", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    done = mtlsearch("train", "--strategy", "hard_sharing", "--dataset", "digits", "--out", str(out), "--epochs", "3",
                     "--seed", "1", "--set", "lr=0.002")
    assert done.returncode == 0, done.stderr
    return out


def test_train_writes_config_metrics_and_checkpoint(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["strategy"] == "hard_sharing" and config["seed"] == 1 and config["train"]["lr"] == 0.002
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert isinstance(metrics["params"], int) and metrics["params"] > 0
    assert metrics["test"]["score"] >= 0.95
    assert set(metrics["test"]["tasks"]) == {f"is_{d}" for d in range(10)}
    assert set(metrics["test"]["tasks"]["is_3"]) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
    assert len(metrics["history"]) == 3 and "score" in metrics["val"]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]

    import torch

    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert sum(v.numel() for k, v in checkpoint["weights"].items() if not k.endswith(("running_mean", "running_var",
               "num_batches_tracked"))) == metrics["params"]


def test_listings():
    datasets = mtlsearch("datasets")
    assert datasets.returncode == 0
    assert "digits" in datasets.stdout and "10 tasks" in datasets.stdout and "celeba" in datasets.stdout
    strategies = mtlsearch("strategies")
    assert strategies.returncode == 0
    for name in ("single_task", "hard_sharing", "cross_stitch"):
        assert name in strategies.stdout


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; valid:"),
    (["--strategy", "magic"], "unknown strategy 'magic'; valid:"),
    (["--set", "learning_rate=0.1"], "unknown setting(s) learning_rate"),
    (["--set", "lr"], "--set takes key=value"),
    (["--set", "epochs=-2"], "epochs must be in"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    done = mtlsearch("train", "--out", str(tmp_path / "out"), *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_malformed_npz_exits_2(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.ones((5, 3)), y=np.full((5, 1), 2.0), task_types=np.array(["binary"]))
    done = mtlsearch("train", "--dataset", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "binary task 'task_0' has labels [2.0]" in done.stderr


def test_existing_results_are_kept_without_overwrite(run_dir):
    before = (run_dir / "metrics.json").read_text()
    done = mtlsearch("train", "--out", str(run_dir), "--epochs", "1")
    assert done.returncode == 2 and "--overwrite" in done.stderr
    assert (run_dir / "metrics.json").read_text() == before
