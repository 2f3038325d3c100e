"""Ray Tune: a function trainable that reports and checkpoints every epoch, OptunaSearch, ASHA, resume."""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Callable

import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ..errors import UserError
from .config import SearchConfig, make_sampler
from .study import storage_for
from .trial import epoch_report, load_state, make_trainer, save_state

STATE_FILE = "trainer.pt"
MAX_EPOCHS = 1000  # ASHA's rung ceiling; each trial stops at its own sampled epoch count first
RAY_SETTINGS = {  # what a search wants from Ray and Tune in this process, unless the user set it already
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # one checkpoint per epoch is by design
    "RAY_TQDM": "0",
}


def trainable(config: dict, dataset: str, seed: int, data_root: str | None, threads: int) -> None:
    """Ray Tune function trainable: train one sampled config, reporting and checkpointing every epoch."""
    torch.set_num_threads(threads)
    trainer = make_trainer(config["sampled"], dataset, seed, data_root)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            trainer.load_state_dict(load_state(Path(directory) / STATE_FILE))

    def on_epoch(tr, record):
        report = {**epoch_report(record, tr.config.epochs), "best_val_score": tr.best["val"]["score"]}
        with tempfile.TemporaryDirectory() as directory:
            save_state(tr, Path(directory) / STATE_FILE)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))

    trainer.on_epoch = on_epoch
    trainer.fit()


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
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        raise UserError(f"`address` {address}: {err}".splitlines()[0], ("address",)) from None


def tuner(config: SearchConfig, space: Callable, experiment: Path, points: list[dict], callbacks: list) -> tune.Tuner:
    """The Tuner of a new search, writing its experiment to the `experiment` directory."""
    several = len(config.objectives) > 1
    metric, mode = (["best_val_score", "params"], ["max", "min"]) if several else ("best_val_score", "max")
    search = OptunaSearch(space=NestedSpace(space), metric=metric, mode=mode, points_to_evaluate=points or None,
                          sampler=make_sampler(config.sampler, config.seed), study_name=experiment.name,
                          storage=storage_for(config.run_dir, None))
    search = tune.search.ConcurrencyLimiter(search, max_concurrent=config.concurrency)
    asha = ASHAScheduler(metric="best_val_score", mode="max", time_attr="training_iteration", max_t=MAX_EPOCHS,
                         grace_period=1, reduction_factor=2) if config.scheduler == "asha" else None
    return tune.Tuner(
        wrapped_trainable(config),
        # reuse_actors: a trial starts in the previous trial's worker (torch already imported): 10 s -> 4.6 s per
        # 8-epoch digits trial, of which 3 s is training (bench/search.py)
        tune_config=tune.TuneConfig(search_alg=search, scheduler=asha, num_samples=config.trials, reuse_actors=True),
        run_config=tune.RunConfig(name=experiment.name, storage_path=str(experiment.parent), verbose=0,
                                  callbacks=callbacks, checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def wrapped_trainable(config: SearchConfig):
    """The trainable with the search's dataset and seed bound, asking Ray for each trial's CPUs and GPUs."""
    threads = max(1, int(config.cpus_per_trial))
    bound = tune.with_parameters(trainable, dataset=config.dataset, seed=config.seed, data_root=config.data_root,
                                 threads=threads)
    return tune.with_resources(bound, {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial})


def restore(config: SearchConfig, experiment: Path) -> tune.Tuner:
    """Resume an interrupted search: finished trials are kept, unfinished ones continue from their checkpoint."""
    if not tune.Tuner.can_restore(str(experiment)):
        raise UserError(f"{experiment} holds no resumable Ray Tune experiment")
    return tune.Tuner.restore(str(experiment), wrapped_trainable(config), resume_unfinished=True,
                              resume_errored=False, restart_errored=False)
