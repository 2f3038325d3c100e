"""An Optuna study of your own: Task Routing's sigma searched with `study.optimize`, pruned, then exported.

`mtlsearch.optuna.objective` trains one trial per call and reports every epoch's validation score, so the
study's pruner can stop a hopeless trial early; `mtlsearch.optuna.export` writes the best trial as
`mtlsearch train` writes a run. The study lives in an SQLite file: run the script again to add trials to it,
or start it on several machines with one database URL (postgresql://...) to share the work.

    python examples/optuna_study.py --out runs/optuna_example --trials 20
    python examples/optuna_study.py --smoke
"""
import argparse
import tempfile
from pathlib import Path

import optuna

import mtlsearch.optuna


def space_for(epochs: int):
    """A define-by-run space: a dict with `strategy` and the settings to train with, drawn from the trial."""

    def space(trial: optuna.Trial) -> dict:
        return {"strategy": "task_routing",
                "sigma": trial.suggest_float("sigma", 0.0, 1.0),  # the share of each layer a task masks out
                "mask_mode": trial.suggest_categorical("mask_mode", ["partition", "knockout"]),
                "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
                "epochs": epochs, "batch_size": 128}

    return space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="study, trials and best run go here (default: a temporary directory)")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--smoke", action="store_true", help="two one-epoch trials: checks that the example runs")
    args = parser.parse_args()
    trials, epochs = (2, 1) if args.smoke else (args.trials, 6)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch).resolve()
        out.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name="task_routing", storage=f"sqlite:///{out / 'study.db'}",
                                    load_if_exists=True, direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=0),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        # trial_dir keeps each finished trial's state, so the best one can be exported afterwards
        objective = mtlsearch.optuna.objective("digits", space_for(epochs), trial_dir=out / "trials")
        study.optimize(objective, n_trials=trials)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        print(f"{len(study.trials)} trials ({pruned} pruned); best {study.best_value:.4f} with {study.best_params}")

        metrics = mtlsearch.optuna.export(study, out / "best", overwrite=True)
        print(f"best trial exported: test score {metrics['test']['score']:.4f}, {metrics['params']:,} parameters, "
              f"structure and frozen model in {out / 'best' if args.out else 'a temporary directory'}")


if __name__ == "__main__":
    main()
