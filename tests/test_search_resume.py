"""Resuming a search: only this user's signed state is unpickled, a copy resumes in place, and bad files end in
one line."""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from test_search import InterruptAfter, config

from mtlsearch.cli import main
from mtlsearch.errors import UserError
from mtlsearch.search import SearchInterrupted, load_config, search, trust
from mtlsearch.search.study import storage_for
from mtlsearch.search.trial import load_state


class CreatesFile:
    """Unpickling this creates `path`: what a hostile directory would do with a shell command."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below `directory` and a hash of its bytes: equal snapshots mean nothing was written."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def copy_of(source: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / "runs" / name
    shutil.copytree(source, target)
    return target


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def fake_run(tmp_path: Path) -> Path:
    """The files a Ray search leaves, without running one: what `sign` and `verify` look at."""
    run = tmp_path / "run"
    (run / "ray" / "trial_1" / "checkpoint_000000").mkdir(parents=True)
    (run / "search.json").write_text(json.dumps({"space": "all"}))
    for name, data in {"tuner.pkl": b"tuner", "experiment_state-1.json": b"{}", "searcher-state-1.pkl": b"s",
                       "search_gen_state-1.json": b"g", "trial_1/params.pkl": b"p", "trial_1/result.json": b"{}",
                       "trial_1/checkpoint_000000/trainer.pt": b"weights"}.items():
        (run / "ray" / name).write_bytes(data)
    return run


def test_signed_state_verifies_in_place_and_in_a_copy(tmp_path):
    run = fake_run(tmp_path)
    trust.sign(run)
    key = trust.key_path()
    assert key.read_bytes() and key.stat().st_mode & 0o777 == 0o600
    assert not key.is_relative_to(run)
    manifest = json.loads((run / trust.MANIFEST).read_text())
    assert set(manifest["files"]) == {"search.json", "ray/tuner.pkl", "ray/experiment_state-1.json",
                                      "ray/searcher-state-1.pkl", "ray/search_gen_state-1.json",
                                      "ray/trial_1/params.pkl"}
    trust.verify(run)
    trust.verify(copy_of(run, tmp_path))
    before = key.read_bytes()
    (run / "ray" / "trial_1" / "result.json").write_text('{"epoch": 2}')  # not loaded as code: may change
    trust.sign(run)
    trust.verify(run)
    assert key.read_bytes() == before  # the key is made once


def replace(run, name, data=b"other"):
    (run / name).write_bytes(data)


@pytest.mark.parametrize("change, reason", [
    (lambda run: replace(run, "ray/tuner.pkl"), "ray/tuner.pkl changed"),
    (lambda run: replace(run, "ray/searcher-state-1.pkl"), "ray/searcher-state-1.pkl changed"),
    (lambda run: replace(run, "ray/searcher-state-2.pkl"), "ray/searcher-state-2.pkl was added"),
    (lambda run: replace(run, "ray/trial_1/error.pkl"), "ray/trial_1/error.pkl was added"),
    (lambda run: replace(run, "search.json", b'{"space": "/elsewhere/space.py"}'), "search.json changed"),
    (lambda run: (run / "ray" / "tuner.pkl").unlink(), "ray/tuner.pkl is missing"),
    (lambda run: (run / "trust.json").unlink(), "no trust.json, so this user did not write it"),
    (lambda run: replace(run, "trust.json", b"[1, 2]"), "not one mtlsearch wrote"),
    (lambda run: replace(run, "trust.json", (run / "trust.json").read_bytes().replace(b'"ray/tuner.pkl"', b'"x"')),
     "not signed with this user's key"),
])
def test_verify_refuses_any_change_to_what_a_resume_loads(tmp_path, change, reason):
    run = fake_run(tmp_path)
    trust.sign(run)
    change(run)
    with pytest.raises(UserError, match="will not resume") as refused:
        trust.verify(run)
    assert reason in str(refused.value) and "`trust`" in str(refused.value)


def test_another_users_key_is_refused(tmp_path, monkeypatch):
    run = fake_run(tmp_path)
    trust.sign(run)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other_user"))
    with pytest.raises(UserError, match="not signed with this user's key"):
        trust.verify(run)
    assert not (tmp_path / "other_user").exists()  # verifying creates no key


def test_a_checkpoint_a_safe_load_refuses_is_one_line_naming_it(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "trainer.pt"
    torch.save({"model": CreatesFile(marker)}, path)
    with pytest.raises(UserError) as refused:
        load_state(path)
    message = str(refused.value)
    assert str(path) in message and "\n" not in message and "weights_only=False" not in message
    assert "builtins.open" in message or "io.open" in message
    assert not marker.exists()


@pytest.fixture(scope="module")
def interrupted(ray_session, tmp_path_factory):
    """A search of four trials stopped by Ctrl-C after two: the directory every resume test copies."""
    cfg = config(tmp_path_factory.mktemp("searches"), "original", space="baselines", concurrency=1)
    with pytest.raises(SearchInterrupted):
        search(cfg, quiet=True, callbacks=[InterruptAfter(2)])
    return cfg.run_dir.resolve()


@pytest.fixture(scope="module")
def finished(interrupted, tmp_path_factory):
    """A copy of the interrupted search resumed to its end by `mtlsearch search --resume COPY` run from another
    directory; (the copy, the original's snapshot before and after, what the other directory holds after)."""
    original = snapshot(interrupted)
    run = copy_of(interrupted, tmp_path_factory.mktemp("finished"), "finished")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(elsewhere)
        assert main(["search", "--resume", str(run), "--quiet"]) == 0
    return run, original, snapshot(interrupted), list(elsewhere.iterdir())


def complete_trials(run: Path) -> int:
    study = optuna.load_study(study_name="ray", storage=storage_for(run, None))
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_copied_search_resumes_in_place_from_any_directory(finished):
    run, original_before, original_after, written_elsewhere = finished
    assert original_after == original_before  # nothing was written into the directory it was copied from
    assert json.loads((run / "summary.json").read_text())["done"] == 4
    assert len(list(run.glob("ray/*/result.json"))) == 4 and complete_trials(run) == 4
    assert written_elsewhere == []
    trust.verify(run)  # the resumed state is signed again


@pytest.mark.parametrize("pickle_file", ["tuner.pkl", "searcher-state-*.pkl", "search_gen_state-*.json",
                                         "*/params.pkl"])
def test_a_tampered_pickle_is_refused_before_ray_loads_it(interrupted, tmp_path, capsys, pickle_file):
    run = copy_of(interrupted, tmp_path)
    target = sorted((run / "ray").glob(pickle_file))[0]
    marker = tmp_path / "ran"
    target.write_bytes(pickle.dumps(CreatesFile(marker)))
    pickle.loads(target.read_bytes())  # the payload is live: loading it creates the file ...
    assert marker.exists()
    marker.unlink()
    before = snapshot(tmp_path)
    assert main(["search", "--resume", str(run)]) == 2
    error = one_line_error(capsys)
    assert f"{target.relative_to(run).as_posix()} changed" in error and "--trust" in error
    assert not marker.exists()  # ... and resuming did not load it
    assert snapshot(tmp_path) == before


def test_a_directory_another_user_wrote_needs_trust(interrupted, tmp_path, capsys, monkeypatch):
    run = copy_of(interrupted, tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other_user"))
    before = snapshot(tmp_path)
    assert main(["search", "--resume", str(run)]) == 2
    error = one_line_error(capsys)
    assert "not signed with this user's key" in error and "--trust resumes a directory you did not write" in error
    assert snapshot(tmp_path) == before
    assert main(["search", "--resume", str(run), "--trust", "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["done"] == 4
    assert len(list(run.glob("ray/*/result.json"))) == 4  # no trial of the copy resumed before in this session
    trust.verify(run)  # now signed by the user who trusted it


def test_a_checkpoint_a_safe_load_refuses_ends_a_resume_in_one_line(finished, tmp_path, capsys):
    run = copy_of(finished[0], tmp_path)
    marker = tmp_path / "ran"
    for checkpoint in run.glob("ray/*/checkpoint_*/trainer.pt"):
        torch.save({"model": CreatesFile(marker)}, checkpoint)
    assert main(["search", "--resume", str(run)]) == 2
    error = one_line_error(capsys)
    assert "trainer.pt holds what a safe (weights-only) load refuses" in error
    assert "weights_only=False" not in error and not marker.exists()


def test_diverging_trials_print_one_line_each(tmp_path):
    """A real command in its own process: Ray's tracebacks, tables and notices stay off the console."""
    command = [sys.executable, "-m", "mtlsearch.cli", "search", "--space", "baselines", "--trials", "2",
               "--concurrency", "1", "--set", "epochs=1", "--set", "lr=1e30", "--out", str(tmp_path), "--name", "nan"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["a trial failed; the search goes on (see leaderboard.md)"] * 2
    summary = done.stdout.splitlines()
    assert len(summary) == 1 and summary[0].startswith("2 trials (0 done, 0 stopped early, 2 failed)")
    rows = (tmp_path / "nan" / "leaderboard.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all("TrainingDiverged" in row for row in rows)


def test_a_copied_optuna_search_resumes_its_own_study_in_the_copy(tmp_path):
    """The study keeps its name and the trial states are read from the copy, even with the original gone."""
    cfg = config(tmp_path / "runs", "a", space="baselines", backend="optuna", trials=2)
    first = search(cfg, quiet=True)
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(cfg.run_dir, copy)
    shutil.rmtree(cfg.run_dir)
    summary = search(load_config(copy), quiet=True, resume=True)
    assert (summary["trials"], summary["done"]) == (first["trials"], first["done"]) == (2, 2)
    assert optuna.get_all_study_names(storage_for(copy, None)) == ["a"]  # no second, empty study "b"
    assert summary["best"] and all(Path(best["dir"]).parent.parent == copy for best in summary["best"].values())
