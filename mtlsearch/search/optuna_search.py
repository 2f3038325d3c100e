"""Running a search as a plain Optuna study (no Ray): pruning, journal or RDB storage, resume."""
from __future__ import annotations

import optuna

from .. import optuna as mtl_optuna
from .spaces import first_points

STATUS = {optuna.trial.TrialState.COMPLETE: "done", optuna.trial.TrialState.PRUNED: "pruned",
          optuna.trial.TrialState.FAIL: "failed"}


def records_from(study: optuna.Study) -> list[dict]:
    records = []
    for t in study.trials:
        if t.state not in STATUS:
            continue
        config = t.user_attrs.get("config", {"strategy": t.params.get("strategy", "?")})
        records.append({"trial": str(t.number), "strategy": config["strategy"], "status": STATUS[t.state],
                        "config": config, "val_score": t.values[0] if t.values else
                        (max(t.intermediate_values.values()) if t.intermediate_values else None),
                        "params": t.user_attrs.get("params"), "epochs_done": len(t.intermediate_values) or None,
                        "error": t.user_attrs.get("error"), "state_path": t.user_attrs.get("state_path")})
    return records


def run_optuna(config, space, *, quiet: bool, callbacks: list):
    """Create or load the study and run the trials it still lacks (finished ones are never repeated)."""
    from .driver import Progress

    run_dir = config.run_dir
    study = mtl_optuna.create_study(config.name, mtl_optuna.storage_for(run_dir, config.storage), config.objectives,
                                    config.seed, config.sampler)
    ended = [t for t in study.trials if t.state in STATUS]
    if not study.trials:
        for point in first_points(config.space):
            study.enqueue_trial(point)
    remaining = max(0, config.trials - len(ended))
    progress = Progress(config.trials, quiet)
    progress.bar.update(len(ended))

    def advance(study, trial):
        score = trial.values[0] if trial.values else None
        progress.done(score, failed=trial.state == optuna.trial.TrialState.FAIL)

    objective = mtl_optuna.objective(config.dataset, space, seed=config.seed, objectives=config.objectives,
                                     data_root=config.data_root, trial_dir=run_dir / "trials")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study.optimize(objective, n_trials=remaining, catch=(Exception,), callbacks=[advance, *callbacks])
    finally:
        progress.close()
    return records_from(study), study
