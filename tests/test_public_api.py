"""The public Python API: the package's lazy surface, mtlsearch.tune's trainable, space and export, and
mtlsearch.optuna's objective and export for Problem objects (the examples run the rest end to end)."""
from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from ray import tune

import mtlsearch
import mtlsearch.optuna
import mtlsearch.tune
from mtlsearch.errors import ConfigError, UserError
from mtlsearch.search import SearchConfig, search
from mtlsearch.search.cli import _config
from mtlsearch.search.ray_backend import experiment_path
from mtlsearch.settings import check_declared

TINY = {"epochs": 2, "batch_size": 128}
pytestmark = pytest.mark.usefixtures("single_thread_torch")


def test_importing_the_package_loads_no_heavy_library_and_every_public_name_resolves():
    code = ("import sys, mtlsearch; heavy = [m for m in ('torch', 'ray', 'optuna') if m in sys.modules]; "
            "print(heavy); [getattr(mtlsearch, name) for name in mtlsearch.__all__]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "[]"
    assert "Trainer" in mtlsearch.__all__ and "Strategy" in mtlsearch.__all__ and "load_frozen" in mtlsearch.__all__
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        mtlsearch.nonsense


def test_a_trial_config_names_every_valid_key_when_one_is_unknown():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) bogus .*valid: .*data_root, dataset, device.*sigma"):
        mtlsearch.tune.trial_config({"dataset": "digits", "strategy": "task_routing", "bogus": 1})
    with pytest.raises(UserError, match="has no `dataset`"):
        mtlsearch.tune.trial_config({"strategy": "sfg"})
    run, sampled = mtlsearch.tune.trial_config({"dataset": "digits", "strategy": "task_routing", "sigma": 0.3})
    assert run == {"dataset": "digits", "strategy": "task_routing", "seed": 0, "data_root": None, "device": None}
    assert sampled == {"strategy": "task_routing", "sigma": 0.3}


@pytest.mark.parametrize("strategy", ["task_routing", "sfg", "selective_sharing", "cross_stitch"])
def test_param_space_draws_what_the_trainable_takes_as_declared_settings(strategy):
    space = mtlsearch.tune.param_space(strategy)
    assert all(isinstance(domain, tune.search.sample.Domain) for domain in space.values())
    for _ in range(20):
        drawn = {key: domain.sample() for key, domain in space.items()}
        _, sampled = mtlsearch.tune.trial_config({"dataset": "digits", "strategy": strategy, **drawn})
        settings = {k: v for k, v in sampled.items() if k != "strategy"}
        check_declared(settings, mtlsearch.get_strategy(strategy))
    with pytest.raises(UserError, match="unknown strategy with a search space 'nonsense'; valid: cross_stitch"):
        mtlsearch.tune.param_space("nonsense")


def test_task_routing_draws_one_sigma_or_one_per_layer():
    draws = {"sigma": 0.1, "sigma_0": 0.2, "sigma_1": 0.3, "mask_mode": "partition"}
    for per_layer, sigma in ((True, [0.2, 0.3]), (False, 0.1)):
        _, sampled = mtlsearch.tune.trial_config({"dataset": "digits", "strategy": "task_routing",
                                                  "sigma_per_layer": per_layer, **draws})
        assert sampled == {"strategy": "task_routing", "sigma": sigma, "mask_mode": "partition"}


class FakeSession:
    """Stands in for Ray Tune's session: hands the trainable a checkpoint and keeps copies of what it reports."""

    Checkpoint = tune.Checkpoint

    def __init__(self, tmp_path, resume_from=None):
        self.tmp_path, self.resume_from, self.reports = tmp_path, resume_from, []

    def get_checkpoint(self):
        return tune.Checkpoint(str(self.resume_from)) if self.resume_from else None

    def report(self, metrics, checkpoint):
        kept = checkpoint.to_directory(str(self.tmp_path / f"checkpoint_{len(self.reports)}"))
        self.reports.append((metrics, kept))


def test_the_trainable_reports_every_epoch_resumes_from_its_checkpoint_and_exports(tmp_path, monkeypatch):
    config = {"dataset": "digits", "strategy": "hard_sharing", **TINY}
    straight = FakeSession(tmp_path / "straight")
    monkeypatch.setattr(mtlsearch.tune, "tune", straight)
    mtlsearch.tune.trainable(config)
    assert [m[mtlsearch.tune.EPOCH] for m, _ in straight.reports] == [1, 2]
    metrics = straight.reports[-1][0]
    assert metrics[mtlsearch.tune.BEST_VAL_SCORE] == max(m[mtlsearch.tune.VAL_SCORE] for m, _ in straight.reports)
    assert metrics[mtlsearch.tune.PARAMS] > 0

    resumed = FakeSession(tmp_path / "resumed", resume_from=straight.reports[0][1])
    monkeypatch.setattr(mtlsearch.tune, "tune", resumed)
    mtlsearch.tune.trainable(config)
    assert [m[mtlsearch.tune.EPOCH] for m, _ in resumed.reports] == [2]
    assert resumed.reports[0][0][mtlsearch.tune.VAL_SCORE] == metrics[mtlsearch.tune.VAL_SCORE]

    written = mtlsearch.tune.export(straight.reports[-1][1], tmp_path / "run")
    assert written["val"]["score"] == metrics[mtlsearch.tune.BEST_VAL_SCORE]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset"] == "digits" and saved["train"]["epochs"] == 2
    assert (tmp_path / "run" / "frozen" / "model.pt2").is_file() and (tmp_path / "run" / "structure.graphml").is_file()
    with pytest.raises(UserError, match="exists and is not empty"):
        mtlsearch.tune.export(straight.reports[-1][1], tmp_path / "run")
    with pytest.raises(UserError, match="neither a trial checkpoint"):
        mtlsearch.tune.export(tmp_path, tmp_path / "elsewhere")


def space(trial) -> dict:
    return {"strategy": "hard_sharing", "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True), **TINY}


def test_an_optuna_objective_takes_a_problem_and_its_export_needs_it_back(tmp_path):
    problem = mtlsearch.load_problem("digits")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(mtlsearch.optuna.objective(problem, space, trial_dir=tmp_path / "trials"), n_trials=1)
    with pytest.raises(UserError, match="trained on a Problem object .*pass it as `problem`"):
        mtlsearch.optuna.export(study, tmp_path / "best")
    written = mtlsearch.optuna.export(study, tmp_path / "best", problem=problem)
    assert written["val"]["score"] == study.best_value
    assert (tmp_path / "best" / "frozen" / "weights.safetensors").is_file()

    kept_nothing = optuna.create_study(direction="maximize")
    kept_nothing.optimize(mtlsearch.optuna.objective("digits", space), n_trials=1)
    with pytest.raises(UserError, match="kept no trainer state: give objective\\(..., trial_dir=DIR\\)"):
        mtlsearch.optuna.export(kept_nothing, tmp_path / "none")
    two = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(UserError, match="several objectives has no single best trial"):
        mtlsearch.optuna.export(two, tmp_path / "two")


def test_a_problem_brings_its_own_backbone_and_strategies_register_by_name():
    layers = [mtlsearch.LayerSpec("linear", 16)]
    problem = mtlsearch.load_problem("digits")
    problem.backbone = mtlsearch.Backbone("mine", problem.input_shape, layers, [mtlsearch.LayerSpec("linear", 8)])
    trainer = mtlsearch.Trainer(problem, mtlsearch.get_strategy("hard_sharing")(problem), mtlsearch.TrainConfig(1))
    assert trainer.backbone is problem.backbone
    with pytest.raises(UserError, match="strategy name 'sfg' is built in"):
        mtlsearch.register_strategy(type("Mine", (mtlsearch.get_strategy("hard_sharing"),), {"name": "sfg"}))


def test_storage_path_holds_the_trials_and_a_resume_there_needs_trust(tmp_path):
    from mtlsearch.cli import parser

    args = parser().parse_args(["search", "--storage-path", "s3://bucket/searches/", "--name", "big"])
    config = _config(args)
    assert config.storage_path == "s3://bucket/searches/"
    assert experiment_path(config) == "s3://bucket/searches/big/ray"
    assert experiment_path(SearchConfig(out=str(tmp_path), name="here")) == str(tmp_path.resolve() / "here" / "ray")
    with pytest.raises(UserError, match="kept in `storage_path` s3://bucket/searches/, outside the signed"):
        search(config, resume=True)
