"""Ray Tune: a function trainable that reports and checkpoints every epoch, OptunaSearch, ASHA, resume."""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Callable

import optuna
import ray
import torch
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # one checkpoint per epoch is by design
os.environ.setdefault("RAY_TQDM", "0")

from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ..errors import UserError
from .trial import epoch_report, load_state, make_trainer, save_state

STATE_FILE = "trainer.pt"
MAX_EPOCHS = 1000  # ASHA's rung ceiling; each trial stops at its own sampled epoch count first


def trainable(config: dict, dataset: str, seed: int, data_root: str | None, threads: int) -> None:
    """Ray Tune function trainable: train one sampled config, reporting and checkpointing every epoch."""
    torch.set_num_threads(threads)
    run = config["run"]
    trainer = make_trainer(run, dataset, seed, data_root)
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


class RunSpace:
    """Wraps a define-by-run space so Ray's config keeps the sampled run under `run` (raw names stay apart)."""

    def __init__(self, space: Callable):
        self.space = space

    def __call__(self, trial) -> dict:
        return {"run": self.space(trial)}


def connect(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray, or join a cluster at `auto` / HOST:PORT, failing fast when it is not reachable."""
    if ray.is_initialized():
        return
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=3):
                pass
        except (OSError, ValueError) as err:
            raise UserError(f"--address {address}: no Ray cluster reachable there ({err}); "
                            f"give auto or HOST:PORT of a running Ray head") from None
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        raise UserError(f"--address {address}: {err}".splitlines()[0]) from None


def tuner(*, space: Callable, dataset: str, seed: int, data_root: str | None, trials: int, storage: Path,
          name: str, objectives: list[str], sampler: str, scheduler: str | None,
          cpus_per_trial: float, gpus_per_trial: float, concurrency: int, points: list[dict],
          callbacks: list, study_storage=None) -> tune.Tuner:
    """The Tuner of a new search."""
    metric = ["best_val_score", "params"] if len(objectives) > 1 else "best_val_score"
    mode = ["max", "min"] if len(objectives) > 1 else "max"
    samplers = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
                "random": optuna.samplers.RandomSampler}
    search = OptunaSearch(space=RunSpace(space), metric=metric, mode=mode, points_to_evaluate=points or None,
                          sampler=samplers[sampler](seed=seed), study_name=name, storage=study_storage)
    search = tune.search.ConcurrencyLimiter(search, max_concurrent=concurrency)
    asha = ASHAScheduler(metric="best_val_score", mode="max", time_attr="training_iteration", max_t=MAX_EPOCHS,
                         grace_period=1, reduction_factor=2) if scheduler == "asha" else None
    return tune.Tuner(
        wrapped_trainable(dataset, seed, data_root, cpus_per_trial, gpus_per_trial),
        # reuse_actors: a trial starts in the previous trial's worker (torch already imported): 10 s -> 4.6 s per
        # 8-epoch digits trial, of which 3 s is training (bench/search.py)
        tune_config=tune.TuneConfig(search_alg=search, scheduler=asha, num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage.resolve()), verbose=0, callbacks=callbacks,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def wrapped_trainable(dataset: str, seed: int, data_root: str | None, cpus: float, gpus: float):
    threads = max(1, int(cpus))
    return tune.with_resources(tune.with_parameters(trainable, dataset=dataset, seed=seed, data_root=data_root,
                                                    threads=threads), {"cpu": cpus, "gpu": gpus})


def restore(path: Path, dataset: str, seed: int, data_root: str | None, cpus: float, gpus: float) -> tune.Tuner:
    """Resume an interrupted search: finished trials are kept, unfinished ones continue from their checkpoint."""
    if not tune.Tuner.can_restore(str(path.resolve())):
        raise UserError(f"{path} holds no resumable Ray Tune experiment")
    return tune.Tuner.restore(str(path.resolve()), wrapped_trainable(dataset, seed, data_root, cpus, gpus),
                              resume_unfinished=True, resume_errored=False, restart_errored=False)
