"""A Ray Tune search of your own: SFG's settings with Ray's Tuner, OptunaSearch and ASHA, then the best exported.

`mtlsearch.tune.trainable` is a function trainable taking one flat config (the dataset, the strategy and any
setting by name); it reports `best_val_score` and a checkpoint every epoch, so ASHA can stop weak trials and
a restored Tuner resumes them. `param_space(strategy)` is the strategy's search space from `search_spaces/`;
`export` writes the best trial as `mtlsearch train` writes a run.

    python examples/ray_tune_search.py --out runs/tune_example --trials 16
    python examples/ray_tune_search.py --smoke
    python examples/ray_tune_search.py --address auto --storage-path /shared/tune   # on a running cluster
"""
import argparse
import tempfile
from pathlib import Path

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

import mtlsearch.tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="sfg", help="a strategy with a search space, e.g. task_routing")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--out", help="the best trial's run directory goes here (default: a temporary directory)")
    parser.add_argument("--address", help="join a running Ray cluster (auto or HOST:PORT) instead of a local Ray")
    parser.add_argument("--storage-path", help="where trials checkpoint; on a cluster a directory every node sees")
    parser.add_argument("--smoke", action="store_true", help="two one-epoch trials: checks that the example runs")
    args = parser.parse_args()

    ray.init(address=args.address, num_cpus=None if args.address else 2, include_dashboard=False,
             log_to_driver=False)
    # what to search: the strategy's declared ranges, plus the dataset; any setting may be fixed instead
    param_space = {"dataset": "digits", "strategy": args.strategy, **mtlsearch.tune.param_space(args.strategy)}
    if args.smoke:
        param_space.update(epochs=1, batch_size=128)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch).resolve()
        tuner = tune.Tuner(
            mtlsearch.tune.trainable,  # each trial gets one CPU (tune.with_resources asks for more, or a GPU)
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=mtlsearch.tune.BEST_VAL_SCORE, mode="max", num_samples=2 if args.smoke else args.trials,
                search_alg=OptunaSearch(seed=0),  # TPE over the param_space
                scheduler=ASHAScheduler(grace_period=1, max_t=10)),  # stops weak trials after their first epoch
            run_config=tune.RunConfig(name="tune_example", storage_path=args.storage_path or str(out / "ray"),
                                      verbose=0))
        results = tuner.fit()
        best = results.get_best_result()
        print(f"{len(results)} trials; best {best.metrics[mtlsearch.tune.BEST_VAL_SCORE]:.4f} with "
              f"{ {k: v for k, v in best.config.items() if k not in ('dataset', 'strategy')} }")

        metrics = mtlsearch.tune.export(best, out / "best", overwrite=True)
        print(f"best trial exported: test score {metrics['test']['score']:.4f}, {metrics['params']:,} parameters, "
              f"structure and frozen model in {out / 'best' if args.out else 'a temporary directory'}")
    ray.shutdown()


if __name__ == "__main__":
    main()
