"""Which tasks help each other? Look-ahead task affinity (Fifty et al. 2021) on multidigits, then one trunk per group.

multidigits has related tasks by construction: left_digit and left_is_even read the left digit, right_digit and
right_is_large the right one, sum_above_9 and digit_sum both need the sum. task_affinity trains them on one
hard-sharing network, measures how much a step on each task's loss alone would move every other task's loss
(Z(i -> j) = 1 - L_j after i's step / L_j), chooses at most `groups` groups with the highest total affinity at
the end of epoch `switch_epoch`, and trains one trunk per group for the remaining epochs.

    python examples/task_affinity.py --out runs/task_affinity
    python examples/task_affinity.py --smoke            # one epoch, into a temporary directory
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import mtlsearch

BY_CONSTRUCTION = [["left_digit", "left_is_even"], ["right_digit", "right_is_large"], ["sum_above_9", "digit_sum"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="the run directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--smoke", action="store_true", help="one epoch: checks that the example runs")
    args = parser.parse_args()
    epochs = 1 if args.smoke else args.epochs
    settings = {"groups": 3, "switch_epoch": 1 if args.smoke else 3, "affinity_every": 2, "backbone": "mlp"}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        # the same call as `mtlsearch train --strategy task_affinity --set groups=3 ...`
        metrics = mtlsearch.train("multidigits", "task_affinity", out, epochs=epochs, settings=settings,
                                  overwrite=True, quiet=True)
        print(f"task_affinity on multidigits: test score {metrics['test']['score']:.4f}, "
              f"{metrics['params']:,} parameters, {metrics['affinity_measurements']} affinity measurements")

        # the mean affinity (row: the task whose step is taken, column: the loss it moves) is in metrics.json
        names, z = metrics["affinity_tasks"], np.array(metrics["task_affinity"])
        width = max(map(len, names))
        print(" " * width + "".join(f"{n[:10]:>11}" for n in names))
        for name, row in zip(names, z):
            print(f"{name:<{width}}" + "".join(f"{v:>11.4f}" for v in row))
        print("chosen groups:  ", metrics["final_groups"])
        print("by construction:", BY_CONSTRUCTION)

        # the exported structure has one trunk per group: every structure tool reads it as it reads any other
        structure = mtlsearch.SharingStructure.load_json(out / "structure.json")
        print(mtlsearch.views.summary(structure))
        print(f"pictures: {out / 'task_affinity.png'} (the affinity, tasks in group order), "
              f"{out / 'structure.png'}")


if __name__ == "__main__":
    main()
