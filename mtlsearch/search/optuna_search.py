"""Running a search as a plain Optuna study (no Ray): pruning, journal or RDB storage, several workers, resume."""
from __future__ import annotations

from pathlib import Path

import optuna

from ..errors import UserError
from .config import SearchConfig, SearchInterrupted, TrialRecord, TrialStatus
from .spaces import first_points
from .study import STORAGE_ERRORS, StudyStorage, join_study, objective, open_storage, storage_reason, trial_state_file
from .workers import TrialBudget, wait_for_other_workers, worker_name

STATUS = {optuna.trial.TrialState.COMPLETE: TrialStatus.DONE, optuna.trial.TrialState.PRUNED: TrialStatus.PRUNED,
          optuna.trial.TrialState.FAIL: TrialStatus.FAILED}
TRIALS = "trials"  # the run directory's folder of trial states


def records_from(study: optuna.Study, run_dir: Path) -> list[TrialRecord]:
    """One leaderboard record per ended trial; a pruned trial's score is its best reported one. A trial's state is
    read from `run_dir` when it is there (a copied or moved directory), else where its worker saved it."""
    records = []
    for t in study.trials:
        if t.state not in STATUS:
            continue
        sampled = t.user_attrs.get("config", {"strategy": t.params.get("strategy", "?")})
        score = t.values[0] if t.values else (max(t.intermediate_values.values()) if t.intermediate_values else None)
        records.append(TrialRecord(str(t.number), sampled["strategy"], STATUS[t.state], sampled, val_score=score,
                                   params=t.user_attrs.get("params"), epochs_done=len(t.intermediate_values) or None,
                                   error=t.user_attrs.get("error"), state_path=_state_path(t, run_dir)))
    return records


def _state_path(trial: optuna.trial.FrozenTrial, run_dir: Path) -> str | None:
    local = trial_state_file(run_dir / TRIALS, trial.number)
    return str(local.resolve()) if local.is_file() else trial.user_attrs.get("state_path")


def run_optuna(config: SearchConfig, space, progress, *, storage: StudyStorage | None = None, callbacks: list):
    """Create or join the study and run trials until it holds `config.trials` over all its workers (finished
    ones are never repeated); then wait for the other workers' last trials, so the records cover the study.

    `storage` is the study's storage when it was opened already (a database URL is checked before the run
    directory is made); else it is opened here.
    """
    try:
        return _run(config, space, progress, storage or open_storage(config.storage, config.run_dir), callbacks)
    except STORAGE_ERRORS as err:  # the database went away or refused a write
        raise UserError(f"the study's storage failed: {storage_reason(err)}") from None


def _run(config: SearchConfig, space, progress, store: StudyStorage, callbacks: list):
    run_dir = config.run_dir
    study, worker = join_study(config.study_name, store, config.objectives, config.seed, config.sampler,
                               settings=config.study_settings(), first=first_points(config.space))
    progress.already_done(len([t for t in study.trials if t.state in STATUS]))
    budget = TrialBudget(store.lock, config.trials)

    def advance(study, trial):
        score = trial.values[0] if trial.values else None
        progress.done(score, failed=trial.state == optuna.trial.TrialState.FAIL)

    trial_objective = objective(config.dataset, space, seed=config.seed, objectives=config.objectives,
                                data_root=config.data_root, trial_dir=(run_dir / TRIALS).resolve())

    def run(trial: optuna.Trial):
        budget.release()  # the trial exists: other workers may start theirs
        trial.set_user_attr("worker", worker_name())
        return trial_objective(trial)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if budget.reserve(study):
            try:
                study.optimize(run, catch=(Exception,), callbacks=[advance, *callbacks, budget])
            finally:
                budget.release()
        wait_for_other_workers(study, progress.note)
    except KeyboardInterrupt:
        raise SearchInterrupted(run_dir) from None
    return records_from(study, config.run_dir), study
