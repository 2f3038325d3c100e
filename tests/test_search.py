"""Searches: a 4-trial Ray search over the mixed spaces, Optuna pruning, a Pareto front, failures, interrupt and
resume."""
import json
import os
import signal

import pytest
from ray import tune

from mtlsearch.cli import main
from mtlsearch.errors import UserError
from mtlsearch.search import SearchConfig, SearchInterrupted, TrialRecord, search
from mtlsearch.search.results import pareto_front

TINY = {"epochs": 1, "batch_size": 128}  # every trial trains one epoch: these tests check the search, not learning
# The two spaces that mix strategies; `all` tries each discovery strategy first, so its four trials train and export
# every one. What each space draws, single-strategy ones too, is tested without training in tests/test_settings.py.
EXPECTED = {"baselines": {"single_task", "hard_sharing", "cross_stitch"},
            "all": {"task_routing", "sfg", "selective_sharing", "task_affinity"}}


def config(tmp_path, name, **changes):
    return SearchConfig(**{"out": str(tmp_path), "name": name, "trials": 4, "fixed": dict(TINY), **changes})


def leaderboard(run_dir):
    return (run_dir / "leaderboard.csv").read_text().strip().splitlines()[1:]


@pytest.mark.parametrize("space", list(EXPECTED))
def test_ray_search_over_each_space(ray_session, tmp_path, space):
    cfg = config(tmp_path, space, space=space)
    summary = search(cfg, quiet=True)
    run_dir = cfg.run_dir
    assert summary["done"] == 4 and summary["failed"] == 0
    assert len(leaderboard(run_dir)) == 4
    assert set(summary["best"]) <= EXPECTED[space]
    if space == "all":  # each discovery strategy is tried first, so each has a best trial
        assert set(summary["best"]) == EXPECTED["all"]
    for strategy in summary["best"]:
        best = run_dir / "best" / strategy
        for name in ("structure.json", "structure.graphml", "structure.png", "metrics.json", "config.json"):
            assert (best / name).is_file(), name
        assert (best / "frozen" / "model.pt2").is_file()
        assert json.loads((best / "metrics.json").read_text())["test"]["score"] > 0.5
    assert (run_dir / "pareto.png").is_file() and (run_dir / "leaderboard.md").is_file()


def write_space(tmp_path, body: str):
    path = tmp_path / "my_space.py"
    path.write_text(body)
    return str(path)


def test_optuna_study_prunes_hopeless_trials(tmp_path):
    space = write_space(tmp_path, (
        "def space(trial):\n"
        "    return {'strategy': 'hard_sharing', 'epochs': 4, 'batch_size': 128,\n"
        "            'lr': trial.suggest_categorical('lr', [3e-3, 1e-7])}\n"))
    cfg = config(tmp_path, "pruning", space=space, backend="optuna", sampler="random", trials=8, fixed={})
    summary = search(cfg, quiet=True)
    rows = [r.split(",") for r in leaderboard(cfg.run_dir)]
    pruned = [r for r in rows if r[2] == "pruned"]
    assert summary["stopped"] == len(pruned) >= 1
    assert all("1e-07" in ",".join(r) for r in pruned)  # only the learning rate that cannot learn gets pruned
    assert (cfg.run_dir / "optuna.journal").is_file()


def test_multi_objective_front_has_no_dominated_point(ray_session, tmp_path):
    cfg = config(tmp_path, "front", space="baselines", objectives=["score", "params"], sampler="nsga2", trials=5)
    summary = search(cfg, quiet=True)
    front = json.loads((cfg.run_dir / "pareto.json").read_text())
    assert front and summary["pareto"] == [p["trial"] for p in front]
    for p in front:
        for q in front:
            assert not (q["val_score"] >= p["val_score"] and q["params"] <= p["params"] and q != p
                        and (q["val_score"] > p["val_score"] or q["params"] < p["params"]))


def test_pareto_front_leaves_out_stopped_and_dominated_trials():
    records = [TrialRecord("a", "hard_sharing", "done", val_score=0.9, params=10),
               TrialRecord("b", "hard_sharing", "done", val_score=0.95, params=20),
               TrialRecord("c", "hard_sharing", "done", val_score=0.85, params=30),  # dominated by a
               TrialRecord("d", "hard_sharing", "stopped", val_score=0.99, params=5)]  # ASHA-stopped: not eligible
    assert [r.trial for r in pareto_front(records)] == ["a", "b"]


@pytest.mark.parametrize("field, value, valid", [("backend", "nonsense", "optuna, ray"),
                                                 ("scheduler", "nonsense", "asha, none"),
                                                 ("sampler", "nonsense", "nsga2, random, tpe")])
def test_search_config_refuses_unknown_choices(field, value, valid):
    with pytest.raises(UserError, match=f"unknown {field} 'nonsense'; valid: {valid}"):
        SearchConfig(**{field: value})


@pytest.mark.parametrize("flag, valid", [("--backend", "'ray', 'optuna'"), ("--scheduler", "'asha', 'none'"),
                                         ("--sampler", "'tpe', 'nsga2', 'random'")])
def test_search_command_refuses_unknown_choices(capsys, flag, valid):
    with pytest.raises(SystemExit) as done:
        main(["search", flag, "nonsense"])
    assert done.value.code == 2 and valid in capsys.readouterr().err


def test_search_errors_name_flags_on_the_command_line(tmp_path, capsys):
    with pytest.raises(UserError, match="`trials` must be at least 1"):
        SearchConfig(trials=0)
    assert main(["search", "--trials", "0", "--out", str(tmp_path)]) == 2
    assert "error: --trials must be at least 1, got 0" in capsys.readouterr().err
    assert main(["search", "--objectives", "params", "--out", str(tmp_path)]) == 2
    assert "error: --objectives params is not valid" in capsys.readouterr().err


def test_ctrl_c_in_a_search_exits_130_with_the_resume_hint(tmp_path, capsys, monkeypatch):
    import mtlsearch.search.driver as driver

    def interrupted(config, **_):
        raise SearchInterrupted(config.run_dir)

    monkeypatch.setattr(driver, "search", interrupted)
    assert main(["search", "--out", str(tmp_path), "--name", "s"]) == 130
    assert f"mtlsearch search --resume {tmp_path / 's'}" in capsys.readouterr().err


def test_fixed_strategy_drops_what_the_space_drew_for_other_strategies():
    """`--set strategy=hard_sharing` on the baselines space: cross-stitch's self_weight must not reach it."""
    import optuna

    from mtlsearch.problems import load_problem
    from mtlsearch.search.spaces import SpaceRef, check_space

    space = SpaceRef("baselines", {"strategy": "hard_sharing", "epochs": 2})
    check_space(space, load_problem("digits"), "baselines", samples=16)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [space(study.ask()) for _ in range(16)]
    assert {c["strategy"] for c in drawn} == {"hard_sharing"} and all(c["epochs"] == 2 for c in drawn)
    assert not any("self_weight" in c for c in drawn) and all("lr" in c for c in drawn)


def test_failed_trial_is_recorded_and_the_search_goes_on(ray_session, tmp_path):
    space = write_space(tmp_path, (
        "def space(trial):\n"
        "    lr = trial.suggest_categorical('lr_kind', ['good', 'diverges'])\n"
        "    return {'strategy': 'hard_sharing', 'lr': 3e-3 if lr == 'good' else 1e30}\n"))
    cfg = config(tmp_path, "failing", space=space, sampler="random", trials=6)
    summary = search(cfg, quiet=True)
    assert summary["failed"] >= 1 and summary["done"] >= 1 and summary["done"] + summary["failed"] == 6
    failed = [r for r in leaderboard(cfg.run_dir) if ",failed," in r]
    assert all("TrainingDiverged" in r or "loss became" in r for r in failed)


class InterruptAfter(tune.Callback):
    """Presses Ctrl-C (SIGINT to this process) once `n` trials have finished."""

    def __init__(self, n):
        self.n, self.finished = n, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished += 1
        if self.finished == self.n:
            os.kill(os.getpid(), signal.SIGINT)

    def __getstate__(self):  # Ray saves the callbacks with the experiment: the restored copy must not fire again
        return {"n": None, "finished": 0}


def test_interrupted_search_resumes_without_repeating_finished_trials(ray_session, tmp_path):
    cfg = config(tmp_path, "interrupted", space="baselines", concurrency=1, fixed={**TINY, "epochs": 2})
    with pytest.raises(SearchInterrupted, match="--resume"):
        search(cfg, quiet=True, callbacks=[InterruptAfter(2)])
    results = sorted(cfg.run_dir.glob("ray/*/result.json"))
    finished = {p: p.read_text() for p in results if len(p.read_text().splitlines()) == 2}
    assert len(finished) >= 2
    summary = search(cfg, quiet=True, resume=True)
    assert summary["done"] == 4
    assert len(list(cfg.run_dir.glob("ray/*/result.json"))) == 4
    for path, text in finished.items():
        assert path.read_text() == text  # a finished trial was not trained again


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random"])
def test_every_sampler_survives_a_pickle_round_trip(name):
    """Ray Tune pickles the searcher with its sampler (Optuna 5.1's NSGA-II holds a thread lock)."""
    import pickle

    import optuna

    from mtlsearch.search.config import make_sampler

    sampler = pickle.loads(pickle.dumps(make_sampler(name, seed=3)))
    study = optuna.create_study(sampler=sampler, directions=["maximize", "minimize"] if name == "nsga2" else None)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0) if name == "nsga2" else t.suggest_float("x", 0, 1),
                   n_trials=3)
    assert len(study.trials) == 3


class KeptReports:
    """Stands in for Ray Tune's session: keeps each report and a copy of its checkpoint, if it has one."""

    Checkpoint = tune.Checkpoint

    def __init__(self, tmp_path):
        self.tmp_path, self.reports = tmp_path, []

    def get_checkpoint(self):
        return None

    def report(self, metrics, checkpoint=None):
        kept = checkpoint and checkpoint.to_directory(str(self.tmp_path / f"checkpoint_{len(self.reports)}"))
        self.reports.append((metrics["epoch"], kept))


@pytest.mark.parametrize("seconds, checkpointed", [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_a_trial_reports_every_epoch_and_checkpoints_at_most_as_often_as_asked(tmp_path, seconds, checkpointed):
    from mtlsearch.search.trial import load_state, train_reporting

    session = KeptReports(tmp_path)
    run = {"dataset": "digits", "strategy": "hard_sharing", "seed": 0, "data_root": None, "device": "cpu"}
    train_reporting(run, {"strategy": "hard_sharing", **TINY, "epochs": 3}, seconds, session)
    assert [epoch for epoch, _ in session.reports] == [1, 2, 3]  # ASHA sees every epoch
    assert [epoch for epoch, kept in session.reports if kept] == checkpointed  # the last one always
    assert load_state(f"{session.reports[-1][1]}/trainer.pt")["epoch"] == 3
