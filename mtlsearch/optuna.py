"""Optuna without Ray, for your own `study.optimize`: an objective for a problem and a space, with pruning,
study storage shared by several workers, and the export of a finished trial as the files `mtlsearch train` writes.

A thin public face over `mtlsearch.search.study` and `mtlsearch.search.config`, where the search keeps them.

Example:
    >>> import optuna, mtlsearch.optuna
    >>> study = optuna.create_study(direction="maximize", storage="sqlite:///study.db")
    >>> study.optimize(mtlsearch.optuna.objective("digits", "sfg", trial_dir="runs/study"), n_trials=8)
    >>> mtlsearch.optuna.export(study, "runs/study_best")
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna

from .errors import UserError
from .problems import Problem
from .run import RunWriter, prepare_out_dir
from .search.config import OBJECTIVES, parse_objectives
from .search.spaces import SpaceRef
from .search.study import create_study, storage_for
from .search.study import objective as study_objective
from .search.trial import export_best, load_state

RUN_ATTR = "run"  # the trial's user attribute naming its dataset, seed and data root, for `export`


def objective(dataset: str | Problem, space: Callable | str, *, seed: int = 0, objectives: list[str] = ("score",),
              data_root: str | None = None, trial_dir: str | Path | None = None, prune: bool = True) -> Callable:
    """`objective(trial)` for `study.optimize`: draw a config from `space`, train it, report every epoch, prune.

    Args:
        dataset: a registry name, FILE.npz, `module:attribute`, or a `Problem` object.
        space: `space(trial) -> dict` (a strategy and its settings, define-by-run), or the name of a space in
            `search_spaces/` (`mtlsearch spaces`) or a FILE.py defining `space(trial)`.
        seed: the training seed of every trial.
        objectives: ["score"] (maximise the best validation score) or ["score", "params"] (and minimise the
            parameter count; the study then needs two directions).
        data_root: where torchvision datasets are read from.
        trial_dir: keep each finished trial's trainer state in `trial_dir/trial_<number>`, so `export` can
            write it; without it nothing is written and trials cannot be exported.
        prune: report each epoch's validation score so the study's pruner can stop a weak trial.

    Returns:
        The objective; each trial records what the space drew (user attribute `config`) and its parameter count.

    Example:
        >>> study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
        >>> study.optimize(objective("digits", "task_routing", trial_dir="runs/tr"), n_trials=10)
    """
    if isinstance(space, str):
        space = SpaceRef(space)
    trains = study_objective(dataset, space, seed=seed, objectives=objectives, data_root=data_root,
                             trial_dir=Path(trial_dir) if trial_dir is not None else None, prune=prune)
    given = isinstance(dataset, Problem)
    run = {"dataset": dataset.name if given else dataset, "problem_object": given, "seed": seed, "data_root": data_root}

    def run_trial(trial: optuna.Trial):
        trial.set_user_attr(RUN_ATTR, run)
        return trains(trial)

    return run_trial


def chosen_trial(study_or_trial) -> optuna.trial.FrozenTrial:
    """A study's best trial (single objective), or the trial given."""
    if not isinstance(study_or_trial, optuna.Study):
        return study_or_trial
    if len(study_or_trial.directions) > 1:
        raise UserError("a study of several objectives has no single best trial; give one of `study.best_trials`",
                        ("study_or_trial",))
    try:
        return study_or_trial.best_trial
    except ValueError:
        raise UserError(f"study {study_or_trial.study_name} has no finished trial to export",
                        ("study_or_trial",)) from None


def export(study_or_trial, out: str | Path, *, problem: Problem | None = None, overwrite: bool = False) -> dict:
    """Write a finished trial as `mtlsearch train` writes a run, at the trial's best epoch.

    Writes config.json, metrics.json (with the test score), checkpoint.pt, structure.json/.graphml, the
    pictures and `frozen/` (model.pt2, weights.safetensors).

    Args:
        study_or_trial: an `optuna.Study` (its best trial) or a `FrozenTrial` (e.g. from `study.best_trials`)
            that `objective(..., trial_dir=...)` ran.
        out: the run directory to write; an existing non-empty one is refused unless `overwrite`.
        problem: the Problem object the objective was given, when it was given one rather than a name.

    Returns:
        The run's metrics (what metrics.json holds).

    Example:
        >>> export(study, "runs/best")["test"]["score"]
    """
    trial = chosen_trial(study_or_trial)
    run, state_path = trial.user_attrs.get(RUN_ATTR), trial.user_attrs.get("state_path")
    if run is None:
        raise UserError(f"trial {trial.number} was not run by mtlsearch.optuna.objective, so it records no dataset "
                        "to export it with", ("study_or_trial",))
    if state_path is None:
        raise UserError(f"trial {trial.number} kept no trainer state: give objective(..., trial_dir=DIR) to keep "
                        "each finished trial for export", ("study_or_trial",))
    if run["problem_object"] and problem is None:
        raise UserError(f"trial {trial.number} trained on a Problem object ({run['dataset']}); pass it as `problem`",
                        ("problem",))
    sampled = trial.user_attrs["config"]
    writer = RunWriter(prepare_out_dir(out, overwrite), run["dataset"], sampled["strategy"], run["seed"],
                       run["data_root"], origin={"trial": trial.number})
    return export_best(load_state(Path(state_path)), sampled, writer, problem)


__all__ = ["OBJECTIVES", "create_study", "export", "objective", "parse_objectives", "storage_for"]
