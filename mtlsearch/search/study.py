"""Optuna studies for a search: their storage, creation or reloading, and the objective that trains a trial.

Several workers on several machines share one study by pointing `storage` at one RDB URL; the default is a
journal file in the run directory, and `load_if_exists` resumes a study.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna

from ..errors import UserError
from .config import OBJECTIVES, make_sampler
from .trial import epoch_report, make_trainer, save_state


def storage_for(run_dir: Path, url: str | None):
    """An RDB URL as given, else a journal file `run_dir/optuna.journal` (safe for several local processes)."""
    if url:
        return url
    path = Path(run_dir) / "optuna.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def create_study(name: str, storage, objectives: list[str], seed: int = 0, sampler: str = "tpe",
                 pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create or load (`load_if_exists`) a study; TPE by default, NSGA-II for several objectives when asked."""
    chosen = make_sampler(sampler, seed)
    try:
        return optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                   directions=[OBJECTIVES[o] for o in objectives], sampler=chosen,
                                   pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    except (ImportError, ValueError) as err:  # a malformed URL or a missing database driver
        raise UserError(f"cannot open study storage {storage!r}: {err}") from None


def objective(dataset: str, space: Callable, *, seed: int = 0, objectives: list[str] = ("score",),
              data_root: str | None = None, trial_dir: Path | None = None, prune: bool = True) -> Callable:
    """`objective(trial)` for `study.optimize`: sample a config from `space`, train, report each epoch, prune.

    Returns the best validation score (and the parameter count with `objectives=["score", "params"]`); what the
    space sampled, the parameter count and, with `trial_dir`, the final trainer state are kept for export.
    """
    objectives = list(objectives)

    def run(trial: optuna.Trial):
        sampled = space(trial)
        trial.set_user_attr("config", sampled)
        trainer = make_trainer(sampled, dataset, seed, data_root)

        def on_epoch(tr, record):
            report = epoch_report(record, tr.config.epochs)
            trial.set_user_attr("params", report["params"])
            if len(objectives) == 1 and prune:  # Optuna prunes single-objective studies only
                trial.report(report["val_score"], report["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {report['epoch']}")

        trainer.on_epoch = on_epoch
        try:
            best = trainer.fit()
        except optuna.TrialPruned:
            raise
        except Exception as err:  # recorded on the trial; study.optimize(catch=...) marks it failed and goes on
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise
        if trial_dir is not None:
            path = Path(trial_dir) / f"trial_{trial.number}"
            path.mkdir(parents=True, exist_ok=True)
            save_state(trainer, path / "trainer.pt")
            trial.set_user_attr("state_path", str(path / "trainer.pt"))
        values = {"score": best["val"]["score"], "params": float(trainer.params())}
        return values["score"] if len(objectives) == 1 else tuple(values[o] for o in objectives)

    return run
