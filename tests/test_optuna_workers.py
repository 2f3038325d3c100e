"""Several `mtlsearch search --backend optuna` workers on one study: started together on a fresh SQLite file or on
a PostgreSQL server, they finish with the asked total of trials and each one's summary covers the whole study;
a storage that cannot be opened is one line and exit status 2, with no run directory left behind."""
import json
import os
import subprocess
import sys

import optuna
import pytest

import postgres
from mtlsearch.cli import main
from mtlsearch.errors import UserError
from mtlsearch.search.config import SearchConfig
from mtlsearch.search.study import join_study

TOTAL = 3  # two workers: one of them must stop while the other still trains
TINY = ["--space", "baselines", "--set", "strategy=hard_sharing", "--set", "epochs=1", "--set", "batch_size=128"]


def start_worker(cwd, *args):
    """One worker process; one torch thread each, so two workers share the two cores of CI."""
    return subprocess.Popen([sys.executable, "-m", "mtlsearch", "search", "--backend", "optuna", "--dataset", "digits",
                             "--trials", str(TOTAL), "--quiet", *TINY, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_together(cwd, *worker_args):
    workers = [start_worker(cwd, *args) for args in worker_args]
    return [(w.wait(timeout=600), *w.communicate()) for w in workers]


def assert_whole_study(storage: str, name: str, run_dirs) -> None:
    """The study holds exactly TOTAL ended trials, and every worker's summary and leaderboard count all of them."""
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == TOTAL
    assert all(t.state.is_finished() for t in trials)
    for run_dir in run_dirs:
        assert json.loads((run_dir / "summary.json").read_text())["trials"] == TOTAL
        assert len((run_dir / "leaderboard.csv").read_text().strip().splitlines()) == 1 + TOTAL


def test_two_workers_on_a_fresh_sqlite_file_each_with_its_own_out(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    results = run_together(tmp_path, *[("--storage", storage, "--name", "shared", "--out", out) for out in ("a", "b")])
    for code, out, err in results:
        assert code == 0, err
        assert f"{TOTAL} trials" in out
    assert_whole_study(storage, "shared", [tmp_path / "a" / "shared", tmp_path / "b" / "shared"])


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server; skipped where none can start, except on CI (.ci/run), which requires it."""
    reason = postgres.missing()
    if reason and os.environ.get("MTLSEARCH_REQUIRE_POSTGRES"):
        pytest.fail(f"{reason}; MTLSEARCH_REQUIRE_POSTGRES is set (as .ci/run does)")
    if reason:
        pytest.skip(reason)
    with postgres.server() as url:
        yield url


def test_two_workers_on_postgresql_share_one_run_directory(tmp_path, postgres_url):
    results = run_together(tmp_path, *[("--storage", postgres_url, "--name", "shared")] * 2)
    for code, out, err in results:
        assert code == 0, err
    assert_whole_study(postgres_url, "shared", [tmp_path / "runs" / "shared"])


@pytest.mark.parametrize("storage, named", [("notaurl://x", "unknown database kind 'notaurl'"),
                                            ("sqlite:////missing/dir/x.db", "folder /missing/dir does not exist")])
def test_a_storage_that_cannot_be_opened_is_one_line_and_leaves_nothing(tmp_path, capsys, storage, named):
    code = main(["search", "--backend", "optuna", "--storage", storage, "--out", str(tmp_path / "runs"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert named in err and "--storage" in err
    assert not (tmp_path / "runs").exists()


def test_a_worker_with_other_settings_is_refused_the_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "shared"
    run_dir.mkdir(parents=True)
    theirs = SearchConfig(backend="optuna", space="baselines", trials=TOTAL + 1, fixed={"epochs": 1})
    (run_dir / "search.json").write_text(json.dumps(theirs.__dict__))
    code = main(["search", "--backend", "optuna", "--name", "shared", "--out", str(tmp_path / "runs"),
                 "--trials", str(TOTAL), "--space", "baselines", "--set", "epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"trials {TOTAL + 1} there, {TOTAL} here" in err and "--name" in err


def test_a_worker_with_other_settings_is_refused_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = SearchConfig(backend="optuna", trials=4)
    study, worker = join_study("s", storage, ["score"], settings=first.study_settings())
    assert worker == 0
    assert join_study("s", storage, ["score"], settings=first.study_settings())[1] == 1  # the next worker
    with pytest.raises(UserError, match="trials 4 there, 6 here"):
        join_study("s", storage, ["score"], settings=SearchConfig(backend="optuna", trials=6).study_settings())
    with pytest.raises(UserError, match="objective"):
        join_study("s", storage, ["score", "params"], settings=first.study_settings())
