"""Do the strategies agree on which tasks belong together? Train three, compare their groupings.

On `synthetic` the tasks come in planted groups (`own` sets how much of each task is its own rather than its
group's). Selective Sharing merges branches whose gradients agree, task_affinity groups tasks whose look-ahead
steps help each other, hard sharing keeps every task together. `mtlsearch.compare` reads each run's groups per
layer from its structure and scores every pair of runs, and each run against the planted groups, by adjusted Rand
index; it writes compare.json and compare.png (the runs' matrices side by side, in one task order).

    python examples/compare_groupings.py --out runs/compare_groupings
    python examples/compare_groupings.py --smoke            # a smaller problem, one epoch
    mtlsearch compare runs/compare_groupings/selective_sharing runs/compare_groupings/task_affinity   # the same
"""
import argparse
import tempfile
from pathlib import Path

import mtlsearch
from mtlsearch.groupings import describe

RUNS = {"selective_sharing": {"criterion": "similarity"}, "task_affinity": {}, "hard_sharing": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where the runs and the comparison go (default: a temporary directory)")
    parser.add_argument("--own", type=float, default=1.0, help="synthetic's difficulty knob (default 1)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="a smaller problem and one epoch")
    args = parser.parse_args()
    epochs = 1 if args.smoke else args.epochs
    dataset = f"synthetic:own={args.own:g}" + (",n_samples=1200" if args.smoke else "")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        for strategy, settings in RUNS.items():
            if strategy == "task_affinity":  # measure the affinity for half the epochs, then one trunk per group
                settings = {"switch_epoch": max(1, epochs // 2), "affinity_every": 2}
            metrics = mtlsearch.train(dataset, strategy, out / strategy, epochs=epochs, settings=settings,
                                      overwrite=True, quiet=True)
            print(f"{strategy}: test score {metrics['test']['score']:.4f}, {metrics['params']:,} parameters")
        result = mtlsearch.compare([out / s for s in RUNS], out=out / "comparison", overwrite=True)
        print(describe(result))
        print(f"written: {out / 'comparison' / 'compare.json'}, {out / 'comparison' / 'compare.png'}")


if __name__ == "__main__":
    main()
