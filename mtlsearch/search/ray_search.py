"""Running a search on Ray Tune and reading its trials back as leaderboard records."""
from __future__ import annotations

import optuna
from ray import tune

from ..optuna import storage_for
from . import ray_backend
from .spaces import first_points

FINISHED = ("TERMINATED", "ERROR")


class TrialProgress(tune.Callback):
    """Advances the progress bar as trials end (the driver's view of the search)."""

    def __init__(self, progress):
        self.progress = progress

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.done((trial.last_result or {}).get("best_val_score"))

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.done(None, failed=True)

    def __getstate__(self):  # the experiment state is pickled; the bar is not part of it
        return {"progress": None}


def records_from(grid, statuses: dict[str, str]) -> list[dict]:
    """One leaderboard record per trial; ASHA-stopped trials are `stopped` (kept out of the Pareto front)."""
    records = []
    for result in grid:
        run = result.config["run"]
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or result.path.rsplit("/", 1)[-1]
        epochs_done, epochs = metrics.get("epoch", 0), metrics.get("epochs", run.get("epochs"))
        if result.error is not None:
            status = "failed"
        elif statuses.get(trial_id, "TERMINATED") not in FINISHED:
            status = "unfinished"
        elif epochs and epochs_done < epochs:
            status = "stopped"
        else:
            status = "done"
        state_path = None
        if result.checkpoint is not None and status == "done":
            state_path = f"{result.checkpoint.path}/{ray_backend.STATE_FILE}"
        error = None
        if result.error is not None:
            error = f"{type(result.error).__name__}: {result.error}".strip().splitlines()[-1]
        records.append({"trial": trial_id, "strategy": run["strategy"], "status": status, "config": run,
                        "val_score": metrics.get("best_val_score"), "params": metrics.get("params"),
                        "epochs_done": epochs_done, "error": error, "state_path": state_path})
    return records


def run_ray(config, space, *, resume: bool, quiet: bool, callbacks: list):
    """Fit (or restore and finish) the Tuner; raise SearchInterrupted when Ctrl-C left trials unfinished."""
    from .driver import Progress, SearchInterrupted

    progress = Progress(config.trials, quiet)
    all_callbacks = [TrialProgress(progress), *callbacks]
    experiment = config.run_dir.resolve() / "ray"
    if resume:
        tuner = ray_backend.restore(experiment, config.dataset, config.seed, config.data_root,
                                    config.cpus_per_trial, config.gpus_per_trial)
    else:
        tuner = ray_backend.tuner(space=space, dataset=config.dataset, seed=config.seed, data_root=config.data_root,
                                  trials=config.trials, storage=experiment.parent, name=experiment.name,
                                  objectives=config.objectives, sampler=config.sampler, scheduler=config.scheduler,
                                  cpus_per_trial=config.cpus_per_trial, gpus_per_trial=config.gpus_per_trial,
                                  concurrency=config.concurrency, points=first_points(config.space),
                                  callbacks=all_callbacks, study_storage=storage_for(config.run_dir, None))
    try:
        grid = tuner.fit()
    finally:
        progress.close()
    statuses = {t.trial_id: t.status for t in tune.ExperimentAnalysis(str(experiment)).trials}
    if len(statuses) < config.trials or any(s not in FINISHED for s in statuses.values()):
        raise SearchInterrupted(f"search interrupted; its state is saved: mtlsearch search --resume {config.run_dir}")
    study = optuna.load_study(study_name=experiment.name, storage=storage_for(config.run_dir, None))
    return records_from(grid, statuses), study
