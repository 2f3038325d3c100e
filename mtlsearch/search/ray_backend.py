"""Ray Tune for a search: its trials run mtlsearch.tune's trainable; OptunaSearch, ASHA, storage, resume."""
from __future__ import annotations

import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from .. import tune as public
from ..errors import UserError
from .config import SearchConfig, make_sampler
from .study import storage_for
from .trial import train_reporting

EXPERIMENT = "ray"  # the Ray Tune experiment's directory name, and the name of its Optuna study
MAX_EPOCHS = 1000  # ASHA's rung ceiling; each trial stops at its own sampled epoch count first
RAY_SETTINGS = {  # what a search wants from Ray and Tune in this process, unless the user set it already
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # one checkpoint per epoch is by design
    "RAY_TQDM": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # the new output prints each trial's error and a header even with verbose=0
}
# a trial checkpoints at its last epoch and, before it, at most this often: one per epoch (13 MB, ~60 ms of CPU for a
# digits hard-sharing trial) was 7 % of its CPU; an interrupted trial redoes at most this much training
CHECKPOINT_SECONDS = 30.0
QUIET_LOGGERS = ("ray.tune.tune", "ray.tune.execution.tune_controller")  # trial tracebacks, Ray's resume hint


def token_notice(record: logging.LogRecord) -> bool:
    """Drops Ray's notice that the local Ray it starts uses token authentication (its default), nothing else."""
    return record.funcName != "_warn_token_auth_enabled"


@contextmanager
def quiet_tune():
    """Ray Tune's console output off while a search runs: the driver shows a bar and one line per failed trial,
    the full errors are in the leaderboard and each trial's error.txt."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def trainable(config: dict, dataset: str, seed: int, data_root: str | None) -> None:
    """A search's trial: what its space sampled (kept apart under `sampled`, checked before the search started)
    trained as mtlsearch.tune.trainable trains, checkpointing at most every CHECKPOINT_SECONDS and at the end."""
    sampled = config["sampled"]
    run = {**public.RUN_KEYS, "dataset": dataset, "strategy": sampled["strategy"], "seed": seed,
           "data_root": data_root}
    train_reporting(run, sampled, CHECKPOINT_SECONDS)


class NestedSpace:
    """Wraps a define-by-run space so Ray's config keeps what it sampled under `sampled` (raw names stay apart)."""

    def __init__(self, space: Callable):
        self.space = space

    def __call__(self, trial) -> dict:
        return {"sampled": self.space(trial)}


def connect(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray, or join a cluster at `auto` / HOST:PORT, failing fast when it is not reachable."""
    for name, value in RAY_SETTINGS.items():
        os.environ.setdefault(name, value)
    if ray.is_initialized():
        return
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=3):
                pass
        except (OSError, ValueError) as err:
            raise UserError(f"`address` {address}: no Ray cluster reachable there ({err}); "
                            f"give auto or HOST:PORT of a running Ray head", ("address",)) from None
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(token_notice)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise UserError(f"`address` {address}: {err}".splitlines()[0], ("address",)) from None


def experiment_path(config: SearchConfig) -> str:
    """Where the trials write their checkpoints: `run_dir/ray`, or `STORAGE_PATH/<name>/ray` when the search has a
    `storage_path` (shared disk or a URI such as s3://) that every node of a cluster reaches."""
    if config.storage_path:
        return f"{config.storage_path.rstrip('/')}/{config.name}/{EXPERIMENT}"
    return str(config.run_dir.resolve() / EXPERIMENT)


def tuner(config: SearchConfig, space: Callable, experiment: str, points: list[dict], callbacks: list) -> tune.Tuner:
    """The Tuner of a new search, writing its experiment to `experiment` (a directory or a URI)."""
    several = len(config.objectives) > 1
    best = public.BEST_VAL_SCORE
    metric, mode = ([best, public.PARAMS], ["max", "min"]) if several else (best, "max")
    search = OptunaSearch(space=NestedSpace(space), metric=metric, mode=mode, points_to_evaluate=points or None,
                          sampler=make_sampler(config.sampler, config.seed), study_name=EXPERIMENT,
                          storage=storage_for(config.run_dir, None))
    search = RelocatableSearch(tune.search.ConcurrencyLimiter(search, max_concurrent=config.concurrency))
    asha = ASHAScheduler(metric=best, mode="max", time_attr="training_iteration", max_t=MAX_EPOCHS,
                         grace_period=1, reduction_factor=2) if config.scheduler == "asha" else None
    return tune.Tuner(
        wrapped_trainable(config),
        # reuse_actors: a trial starts in the previous trial's worker (torch already imported): 10 s -> 4.6 s per
        # 8-epoch digits trial, of which 3 s is training (bench/search.py)
        tune_config=tune.TuneConfig(search_alg=search, scheduler=asha, num_samples=config.trials, reuse_actors=True),
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=experiment.rpartition("/")[0], verbose=0,
                                  callbacks=callbacks, checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def wrapped_trainable(config: SearchConfig):
    """The trainable with the search's dataset and seed bound, asking Ray for each trial's CPUs and GPUs."""
    bound = tune.with_parameters(trainable, dataset=config.dataset, seed=config.seed, data_root=config.data_root)
    return tune.with_resources(bound, {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial})


class RelocatableSearch(SearchGenerator):
    """Ray's search generator, restored from the experiment directory it is resumed from and pointed at it.

    Ray pickles absolute paths into the search state (the experiment directory new trials are written to, the
    Optuna journal) and restores them as they were; a copied or moved search must write to itself instead.
    """

    resumed_at: Path | None = None  # the experiment directory of this process's latest `restore`

    def restore_from_dir(self, dirpath: str) -> None:
        experiment = RelocatableSearch.resumed_at
        if experiment is None:  # Tuner.restore called directly, not through `restore`: Ray's paths as they were
            return super().restore_from_dir(dirpath)
        drop_foreign_state(Path(dirpath), experiment)
        super().restore_from_dir(dirpath)
        storage = self._experiment.storage  # the same StorageContext as in the spec new trials are made from
        storage.storage_fs_path, storage.experiment_dir_name = experiment.parent.as_posix(), experiment.name
        searcher = self.searcher
        while hasattr(searcher, "searcher"):
            searcher = searcher.searcher
        # one JournalStorage is shared by the searcher, its study and its trials: re-point its file
        searcher._storage._backend = storage_for(experiment.parent, None)._backend


def drop_foreign_state(staging: Path, experiment: Path) -> None:
    """Remove from Ray's staging directory what the resumed experiment directory does not hold.

    Ray stages a restore in a directory named by the session, the search's start time and `ray`, which copies of
    one search share: a newer searcher state or trial left there by another copy would be restored and synced
    into this one, instead of the state in the verified directory.
    """
    for path in staging.iterdir():
        if not (experiment / path.name).exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def restore(config: SearchConfig, experiment: str) -> tune.Tuner:
    """Resume an interrupted search: finished trials are kept, unfinished ones continue from their checkpoint.

    A run directory resumes wherever it is now; trials kept under a `storage_path` stay where they are."""
    if not tune.Tuner.can_restore(experiment):
        raise UserError(f"{experiment} holds no resumable Ray Tune experiment")
    RelocatableSearch.resumed_at = None if config.storage_path else Path(experiment)
    return tune.Tuner.restore(experiment, wrapped_trainable(config), resume_unfinished=True,
                              resume_errored=False, restart_errored=False)
