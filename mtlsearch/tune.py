"""Ray Tune for your own `tune.Tuner`: a function trainable taking one flat config, a strategy's search space as
a `param_space`, and the export of a finished trial as the files `mtlsearch train` writes.

Example:
    >>> from ray import tune
    >>> import mtlsearch.tune
    >>> tuner = tune.Tuner(mtlsearch.tune.trainable,
    ...                    param_space={"dataset": "digits", "strategy": "sfg", **mtlsearch.tune.param_space("sfg")},
    ...                    tune_config=tune.TuneConfig(metric=mtlsearch.tune.BEST_VAL_SCORE, mode="max", num_samples=8))
    >>> mtlsearch.tune.export(tuner.fit().get_best_result(), "runs/best_sfg")
"""
from __future__ import annotations

import json
from pathlib import Path

from ray import tune

import search_spaces
from search_spaces.ranges import domains, draw_names, settle

from .errors import ConfigError, UserError, choice_error
from .run import RunWriter, prepare_out_dir
from .search.trial import (  # what every epoch reports and every checkpoint holds (see search.trial)
    BEST_VAL_SCORE, EPOCH, NODE_ID, PARAMS, STATE_FILE, TRIAL_FILE, VAL_SCORE, export_best, load_state,
    train_reporting)
from .settings import accepted_settings
from .strategies import get_strategy

RUN_KEYS = {"dataset": None, "strategy": None, "seed": 0, "data_root": None, "device": None}  # the rest are settings


def trial_config(config: dict) -> tuple[dict, dict]:
    """(run, sampled) from a flat config: run holds RUN_KEYS, sampled the strategy and its settings.

    A space's own draws (e.g. `sigma_per_layer`, `sigma_0`) become their setting; any other unknown key is a
    ConfigError naming every valid one.
    """
    run = {**RUN_KEYS, **{k: v for k, v in config.items() if k in RUN_KEYS}}
    for key in ("dataset", "strategy"):
        if run[key] is None:
            raise UserError(f"the trial config has no `{key}`; give it with the settings, e.g. "
                            "{'dataset': 'digits', 'strategy': 'sfg', 'lr': 0.003}", (key,))
    cls = get_strategy(run["strategy"])
    ranges = search_spaces.by_strategy().get(run["strategy"], {})
    settings = {k: v for k, v in config.items() if k not in RUN_KEYS}
    valid = set(RUN_KEYS) | accepted_settings(cls) | draw_names(ranges)
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in the trial config of strategy {run['strategy']}; "
                          f"valid: {', '.join(sorted(valid))}")
    return run, {"strategy": run["strategy"], **settle(ranges, settings)}


def trainable(config: dict) -> None:
    """Ray Tune function trainable: train one flat config, reporting and checkpointing every epoch.

    Args:
        config: `dataset` (a registry name, FILE.npz or `module:attribute`), `strategy`, and any trainer or
            strategy setting by its plain name (`lr`, `epochs`, `sigma`, `tau0`, `criterion`, ...), optionally
            `seed` (0), `data_root` and `device` (default: CUDA when available). Missing settings take their
            defaults; the keys `param_space` draws are accepted too. An unknown key fails the trial, naming
            the valid ones.

    Every epoch calls `ray.tune.report` with VAL_SCORE, BEST_VAL_SCORE, PARAMS, EPOCH and NODE_ID and a
    `ray.tune.Checkpoint`; a restored trial resumes from `ray.tune.get_checkpoint()`. Torch uses one thread
    per CPU Ray gave the trial.

    Example:
        >>> tune.Tuner(trainable, param_space={"dataset": "digits", "strategy": "hard_sharing", "epochs": 2,
        ...                                    "lr": tune.loguniform(1e-3, 1e-2)}).fit()
    """
    run, sampled = trial_config(config)
    train_reporting(run, sampled, session=tune)  # a checkpoint every epoch; `tune` is what tests replace


def param_space(strategy: str) -> dict:
    """A strategy's search space as a Ray Tune `param_space` (tune.uniform, tune.choice, ...).

    The ranges are the ones `search_spaces/` declares, flat: a setting drawn as one value or one per layer
    (Task Routing's sigma) appears as all of its draws, which `trainable` turns back into the setting.

    Args:
        strategy: a strategy with a search space: task_routing, sfg, selective_sharing, single_task,
            hard_sharing or cross_stitch. Add `dataset` and `strategy` (and fixed settings) yourself.

    Example:
        >>> space = {"dataset": "digits", "strategy": "sfg", **param_space("sfg"), "epochs": 2}
        >>> tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(
        ...     metric=BEST_VAL_SCORE, mode="max", search_alg=OptunaSearch(), num_samples=8)).fit()
    """
    spaces = search_spaces.by_strategy()
    if strategy not in spaces:
        raise choice_error("strategy with a search space", strategy, spaces)
    return domains(spaces[strategy])


def checkpoint_of(result) -> tune.Checkpoint:
    """The checkpoint of a Result, or the one at a path (a checkpoint directory, a trial directory, or a URI)."""
    if isinstance(result, (str, Path)):
        path = str(result)
        if "://" in path or (Path(path) / STATE_FILE).is_file():
            return tune.Checkpoint(path)
        if not (Path(path) / "result.json").is_file():
            raise UserError(f"`result` {path} is neither a trial checkpoint (holding {STATE_FILE}) nor a Ray Tune "
                            "trial directory; give a ray.tune.Result, a Checkpoint or one of those paths", ("result",))
        result = tune.Result.from_path(path)
    if isinstance(result, tune.Checkpoint):
        return result
    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None:
        raise UserError("`result` has no checkpoint: the trial reported none (did it fail before its first epoch, "
                        "or was checkpointing switched off?)", ("result",))
    return checkpoint


def export(result, out: str | Path, *, overwrite: bool = False) -> dict:
    """Write a finished trial as `mtlsearch train` writes a run, at the trial's best epoch.

    Writes config.json, metrics.json (with the test score), checkpoint.pt, structure.json/.graphml, the
    pictures and `frozen/` (model.pt2, weights.safetensors). The checkpoint is read through its own storage,
    so a trial that ran on another node of a cluster (storage_path on shared disk or `s3://`) exports too.

    Args:
        result: a `ray.tune.Result` (e.g. `ResultGrid.get_best_result()`), a `ray.tune.Checkpoint`, or the
            path of a trial's checkpoint or trial directory.
        out: the run directory to write; an existing non-empty one is refused unless `overwrite`.

    Returns:
        The run's metrics (what metrics.json holds).

    Example:
        >>> best = tuner.fit().get_best_result(metric=BEST_VAL_SCORE, mode="max")
        >>> export(best, "runs/best")["test"]["score"]
    """
    checkpoint = checkpoint_of(result)
    with checkpoint.as_directory() as directory:
        if not (Path(directory) / TRIAL_FILE).is_file():
            raise UserError(f"checkpoint {checkpoint.path} was not written by mtlsearch.tune.trainable (no "
                            f"{TRIAL_FILE})", ("result",))
        saved = json.loads((Path(directory) / TRIAL_FILE).read_text())
        state = load_state(Path(directory) / STATE_FILE)
    sampled = saved["sampled"]
    trial_id = (getattr(result, "metrics", None) or {}).get("trial_id")
    origin = {"trial": trial_id} if trial_id else {"checkpoint": str(checkpoint.path)}
    writer = RunWriter(prepare_out_dir(out, overwrite), saved["dataset"], sampled["strategy"], saved["seed"],
                       saved["data_root"], origin=origin)
    return export_best(state, sampled, writer)


__all__ = ["BEST_VAL_SCORE", "EPOCH", "NODE_ID", "PARAMS", "VAL_SCORE", "export", "param_space", "trainable"]
