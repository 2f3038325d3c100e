"""Running a search as a plain Optuna study (no Ray): pruning, journal or RDB storage, resume."""
from __future__ import annotations

import optuna

from .config import SearchConfig, SearchInterrupted, TrialRecord, TrialStatus
from .spaces import first_points
from .study import create_study, objective, storage_for

STATUS = {optuna.trial.TrialState.COMPLETE: TrialStatus.DONE, optuna.trial.TrialState.PRUNED: TrialStatus.PRUNED,
          optuna.trial.TrialState.FAIL: TrialStatus.FAILED}


def records_from(study: optuna.Study) -> list[TrialRecord]:
    """One leaderboard record per ended trial; a pruned trial's score is its best reported one."""
    records = []
    for t in study.trials:
        if t.state not in STATUS:
            continue
        sampled = t.user_attrs.get("config", {"strategy": t.params.get("strategy", "?")})
        score = t.values[0] if t.values else (max(t.intermediate_values.values()) if t.intermediate_values else None)
        records.append(TrialRecord(str(t.number), sampled["strategy"], STATUS[t.state], sampled, val_score=score,
                                   params=t.user_attrs.get("params"), epochs_done=len(t.intermediate_values) or None,
                                   error=t.user_attrs.get("error"), state_path=t.user_attrs.get("state_path")))
    return records


def run_optuna(config: SearchConfig, space, progress, *, callbacks: list):
    """Create or load the study and run the trials it still lacks (finished ones are never repeated)."""
    run_dir = config.run_dir
    study = create_study(config.name, storage_for(run_dir, config.storage), config.objectives, config.seed,
                         config.sampler)
    ended = [t for t in study.trials if t.state in STATUS]
    if not study.trials:
        for point in first_points(config.space):
            study.enqueue_trial(point)
    progress.already_done(len(ended))

    def advance(study, trial):
        score = trial.values[0] if trial.values else None
        progress.done(score, failed=trial.state == optuna.trial.TrialState.FAIL)

    trial_objective = objective(config.dataset, space, seed=config.seed, objectives=config.objectives,
                                data_root=config.data_root, trial_dir=run_dir / "trials")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study.optimize(trial_objective, n_trials=max(0, config.trials - len(ended)), catch=(Exception,),
                       callbacks=[advance, *callbacks])
    except KeyboardInterrupt:
        raise SearchInterrupted(run_dir) from None
    return records_from(study), study
