"""Running a search on Ray Tune and reading its trials back as leaderboard records."""
from __future__ import annotations

from pathlib import Path

import optuna
from ray import tune

from .. import tune as tune_api
from . import ray_backend
from .config import SearchConfig, SearchInterrupted, TrialRecord, TrialStatus
from .spaces import first_points
from .study import storage_for

FINISHED = ("TERMINATED", "ERROR")


class ProgressCallback(tune.Callback):
    """Advances the driver's progress bar as trials end."""

    def __init__(self, progress):
        self.progress = progress

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.done((trial.last_result or {}).get(tune_api.BEST_VAL_SCORE))

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.progress:
            self.progress.done(None, failed=True)

    def __getstate__(self):  # the experiment state is pickled; the bar is not part of it
        return {"progress": None}


def status_of(result, statuses: dict[str, str], trial_id: str) -> TrialStatus:
    """ASHA-stopped trials (fewer epochs than they sampled) are `stopped`, kept out of the Pareto front."""
    metrics = result.metrics or {}
    epochs = metrics.get("epochs", result.config["sampled"].get("epochs"))
    if result.error is not None:
        return TrialStatus.FAILED
    if statuses.get(trial_id, "TERMINATED") not in FINISHED:
        return TrialStatus.UNFINISHED
    if epochs and metrics.get("epoch", 0) < epochs:
        return TrialStatus.STOPPED
    return TrialStatus.DONE


def local_state(checkpoint: tune.Checkpoint, run_dir: Path, trial_id: str) -> str:
    """A finished trial's trainer state as a local file: where it is on a local or shared disk, else copied from
    the search's storage (e.g. s3://) into `run_dir/checkpoints/<trial>`."""
    if checkpoint.filesystem.type_name == "local":
        return f"{checkpoint.path}/{tune_api.STATE_FILE}"
    return f"{checkpoint.to_directory(str(run_dir / 'checkpoints' / trial_id))}/{tune_api.STATE_FILE}"


def records_from(grid, statuses: dict[str, str], run_dir: Path) -> list[TrialRecord]:
    """One leaderboard record per trial of the result grid."""
    records = []
    for result in grid:
        sampled, metrics = result.config["sampled"], result.metrics or {}
        trial_id = metrics.get("trial_id") or result.path.rsplit("/", 1)[-1]
        status = status_of(result, statuses, trial_id)
        state_path = None
        if result.checkpoint is not None and status == TrialStatus.DONE:
            state_path = local_state(result.checkpoint, run_dir, trial_id)
        error = None
        if result.error is not None:
            error = f"{type(result.error).__name__}: {result.error}".strip().splitlines()[-1]
        records.append(TrialRecord(trial_id, sampled["strategy"], status, sampled,
                                   val_score=metrics.get(tune_api.BEST_VAL_SCORE), params=metrics.get(tune_api.PARAMS),
                                   epochs_done=metrics.get(tune_api.EPOCH, 0), error=error, state_path=state_path))
    return records


def run_ray(config: SearchConfig, space, progress, *, resume: bool, callbacks: list):
    """Fit (or restore and finish) the Tuner; raise SearchInterrupted when Ctrl-C left trials unfinished."""
    experiment = ray_backend.experiment_path(config)
    if resume:
        tuner = ray_backend.restore(config, experiment)
    else:
        tuner = ray_backend.tuner(config, space, experiment, first_points(config.space),
                                  [ProgressCallback(progress), *callbacks])
    with ray_backend.quiet_tune():
        grid = tuner.fit()
    statuses = {t.trial_id: t.status for t in tune.ExperimentAnalysis(experiment).trials}
    if len(statuses) < config.trials or any(s not in FINISHED for s in statuses.values()):
        raise SearchInterrupted(config.run_dir)
    study = optuna.load_study(study_name=ray_backend.EXPERIMENT, storage=storage_for(config.run_dir, None))
    return records_from(grid, statuses, config.run_dir), study
