"""`mtlsearch train --resume`: a run stopped (Ctrl-C, or fewer epochs) and resumed equals the run trained straight."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mtlsearch import run
from mtlsearch.cli import main
from test_resume import _same as same_tensors, _without_times as without_seconds
from test_structure_cli import fails

pytestmark = pytest.mark.usefixtures("single_thread_torch")
FAST = ["--quiet", "--set", "batch_size=256", "--seed", "3"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # as in-process runs under single_thread_torch: same numbers


def train(*args) -> None:
    assert main(["train", *args]) == 0


def assert_same_run(a, b) -> None:
    """Same config, per-epoch lines, metrics, structure, best weights and training state."""
    for name in ("config.json", "metrics.json", "structure.json"):
        assert (without_seconds(json.loads((a / name).read_text()))
                == without_seconds(json.loads((b / name).read_text())))
    epochs = [[without_seconds(json.loads(line)) for line in (d / "metrics.jsonl").read_text().splitlines()]
              for d in (a, b)]
    assert epochs[0] == epochs[1]
    ca, cb = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (a, b))
    assert ca["epoch"] == cb["epoch"] and ca["trainer"]["epoch"] == cb["trainer"]["epoch"]
    assert same_tensors(ca["weights"], cb["weights"]) and same_tensors(ca["trainer"]["model"], cb["trainer"]["model"])
    assert same_tensors(ca["trainer"]["optimizer"], cb["trainer"]["optimizer"])


@pytest.mark.parametrize("strategy, settings", [("sfg", ["--set", "epochs=2"]),
                                                ("task_routing", ["--set", "task_sampling=one", "--set", "epochs=2"])])
def test_fewer_epochs_then_resume_equals_straight(tmp_path, strategy, settings):
    train("--strategy", strategy, "--out", str(tmp_path / "straight"), *FAST, *settings)
    train("--strategy", strategy, "--out", str(tmp_path / "stopped"), *FAST, *settings, "--epochs", "1")
    assert len(json.loads((tmp_path / "stopped" / "metrics.json").read_text())["history"]) == 1
    train("--resume", str(tmp_path / "stopped"), "--epochs", "2", "--quiet")
    assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_ctrl_c_then_resume_equals_straight(tmp_path):
    """A real interrupt in a separate process: exit 130 with the command that continues, then that command."""
    args = ["--strategy", "hard_sharing", *FAST, "--epochs", "3"]
    train("--out", str(tmp_path / "straight"), *args)
    out = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "mtlsearch", "train", "--out", str(out), *args],
                               stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=300)[1]
    if process.returncode == 130:  # stopped after one or two epochs
        assert f"mtlsearch train --resume {out}" in err and len(err.strip().splitlines()) == 1, err
        assert not (out / "metrics.json").exists() and not list(out.glob("*.tmp"))
    else:  # the machine was too slow to interrupt before the end: resuming a finished run must still agree
        assert process.returncode == 0, err
    done = subprocess.run([sys.executable, "-m", "mtlsearch", "train", "--resume", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "straight", out)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, single_thread_torch):
    out = tmp_path_factory.mktemp("resume") / "run"
    train("--out", str(out), *FAST, "--epochs", "1", "--set", "lr=0.002")
    return out


@pytest.mark.parametrize("args, message", [
    (["--set", "lr=0.1"], "--set lr=0.1 contradicts the run's lr=0.002; a resumed run keeps its settings"),
    (["--set", "sigma=0.1"], "unknown setting(s) sigma for strategy hard_sharing"),
    (["--strategy", "sfg"], "--strategy 'sfg' contradicts the run's 'hard_sharing'"),
    (["--dataset", "multidigits"], "--dataset 'multidigits' contradicts the run's 'digits'"),
    (["--seed", "4"], "--seed 4 contradicts the run's 3"),
    (["--out", "elsewhere"], "--resume rewrites the run's own directory; leave out --out and --overwrite"),
    (["--epochs", "0"], "epochs must be in"),
])
def test_resume_refuses_what_contradicts_the_run(one_epoch, capsys, args, message):
    before = {p.name: p.read_bytes() for p in one_epoch.iterdir() if p.is_file()}
    fails(capsys, ["train", "--resume", str(one_epoch), *args], message)
    assert {p.name: p.read_bytes() for p in one_epoch.iterdir() if p.is_file()} == before


def test_resume_with_what_the_run_has_rewrites_its_outputs(one_epoch):
    before = json.loads((one_epoch / "metrics.json").read_text())
    train("--resume", str(one_epoch), "--set", "lr=0.002", "--strategy", "hard_sharing", "--seed", "3", "--quiet")
    assert without_seconds(json.loads((one_epoch / "metrics.json").read_text())) == without_seconds(before)


def test_resume_refuses_missing_and_damaged_checkpoints(one_epoch, tmp_path, capsys):
    fails(capsys, ["train", "--resume", str(tmp_path / "none")], "no such run directory")
    fails(capsys, ["train", "--resume", str(tmp_path)], "holds no config.json and no checkpoint.pt")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "checkpoint.pt"):
        (copy / name).write_bytes((one_epoch / name).read_bytes())
    data = (copy / "checkpoint.pt").read_bytes()
    (copy / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    fails(capsys, ["train", "--resume", str(copy)], f"{copy / 'checkpoint.pt'}: not a readable checkpoint")
    torch.save({"weights": {}, "epoch": 1}, copy / "checkpoint.pt")
    fails(capsys, ["train", "--resume", str(copy)], "holds the best model but no training state to continue from")
    torch.save({"trainer": {"epoch": 1}, "payload": os.urandom}, copy / "checkpoint.pt")
    err = fails(capsys, ["train", "--resume", str(copy)], "holds objects a weights-only load refuses")
    assert "weights_only=False" not in err
    state = torch.load(one_epoch / "checkpoint.pt", weights_only=True)
    state["trainer"]["epoch"] = 5
    (copy / "checkpoint.pt").unlink()
    torch.save(state, copy / "checkpoint.pt")
    fails(capsys, ["train", "--resume", str(copy), "--epochs", "2"], "--epochs 2 is fewer than the 5 epochs")


def test_checkpoint_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    run.save_atomically({"epoch": 1}, path)

    def killed(state, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(run.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        run.save_atomically({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
