"""Discovery quality as a curve: how well Selective Sharing's criteria and task_affinity recover the planted groups
of `synthetic` as its difficulty knob `own` grows, against the random control.

    python bench/discovery.py [--quick] [--own 0,0.5,...] [--seeds N] [--epochs E] [--workers W] [--out FILE.png]

For each value of `own` (how much of each task is its own function rather than its group's) and each seed, the
problem `synthetic:own=<own>,seed=<seed>` is trained once per criterion and once by task_affinity (affinity
measured over every epoch, groups chosen at the end); the adjusted Rand index (ARI) of the
final groups against the planted ones is printed as its mean and spread (lowest and highest) over the seeds and
drawn as one picture (default docs/discovery.png). ARI 1 is exact recovery, 0 is chance.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from matplotlib.figure import Figure
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.task_affinity import recovery as affinity_recovery
from mtlsearch.problems.builtin import synthetic
from mtlsearch.reproduce.experiments import group_labels
from mtlsearch.strategies.selective_sharing import CRITERIA, SelectiveSharing
from mtlsearch.training import TrainConfig, Trainer

KNOB = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
QUICK_KNOB = (0.0, 1.0, 2.0)
PICTURE = Path(__file__).resolve().parents[1] / "docs" / "discovery.png"


def recovery(own: float, seed: int, criterion: str, epochs: int) -> float:
    """ARI of the groups Selective Sharing ends with against the planted groups of synthetic:own=<own>,seed=<seed>."""
    problem = synthetic(own=own, seed=seed)
    strategy = SelectiveSharing(problem, {"criterion": criterion}, seed)
    Trainer(problem, strategy, TrainConfig(epochs=epochs), seed=seed, quiet=True, device="cpu").fit()
    return float(adjusted_rand_score(problem.true_groups, group_labels(strategy.groups, problem.task_names)))


METHODS = (*CRITERIA, "task_affinity")


def one_run(own: float, seed: int, method: str, epochs: int, threads: int) -> float:
    torch.set_num_threads(threads)
    if method == "task_affinity":
        return affinity_recovery(own, seed, epochs)
    return recovery(own, seed, method, epochs)


def sweep(knob, seeds: int, epochs: int, workers: int = 1, threads: int = 1) -> dict[str, list[list[float]]]:
    """ARI per method (each criterion, task_affinity), per knob value, per seed; `workers` runs at once."""
    ari = {method: [] for method in METHODS}
    with ProcessPoolExecutor(workers) as pool:
        for own in knob:
            futures = {m: [pool.submit(one_run, own, seed, m, epochs, threads) for seed in range(seeds)]
                       for m in METHODS}
            for method, runs in futures.items():
                ari[method].append([f.result() for f in runs])
            print(f"own={own:g}: " + "  ".join(f"{m} {statistics.mean(ari[m][-1]):.2f}" for m in METHODS),
                  file=sys.stderr, flush=True)
    return ari


def table(knob, ari: dict[str, list[list[float]]]) -> str:
    """The ARI's mean [lowest, highest] over the seeds, one row per knob value, one column per criterion."""
    lines = ["own  " + "".join(f"{c:>22}" for c in ari)]
    for i, own in enumerate(knob):
        cells = "".join(f"{statistics.mean(v[i]):>8.2f} [{min(v[i]):5.2f}, {max(v[i]):5.2f}]" for v in ari.values())
        lines.append(f"{own:<5g}{cells}")
    return "\n".join(lines)


def breakdown(knob, ari: list[list[float]]) -> str:
    """The first knob value at which a method's mean ARI falls below 1 (exact recovery), 0.7 and 0.5."""
    def first(below: float) -> str:
        return next((f"{own:g}" for own, values in zip(knob, ari) if statistics.mean(values) < below), "never")
    return f"below 1 from own={first(1.0 - 1e-9)}, below 0.7 from own={first(0.7)}, below 0.5 from own={first(0.5)}"


def draw(knob, ari: dict[str, list[list[float]]], seeds: int, epochs: int, path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for criterion, values in ari.items():
        means = [statistics.mean(v) for v in values]
        spread = [[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]]
        ax.errorbar(knob, means, yerr=spread, capsize=3,
                    marker="o", linestyle="--" if criterion == "random" else "-",
                    label=criterion + (" (control)" if criterion == "random" else ""))
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("own: each task's own function relative to its group's shared one")
    ax.set_ylabel("adjusted Rand index vs planted groups")
    ax.set_title(f"Selective Sharing and task_affinity on synthetic (8 tasks, 4 groups): mean and range of {seeds} "
                 "seeds, "
                 f"{epochs} epochs", fontsize=9)
    ax.set_ylim(-0.35, 1.05)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three knob values, one seed (a smoke check)")
    parser.add_argument("--own", help=f"comma-separated knob values (default {','.join(map(str, KNOB))})")
    parser.add_argument("--seeds", type=int, help="seeds per point (default 3, quick 1)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per run (default 10, as the "
                                                                "reproduction's criteria runs on synthetic)")
    parser.add_argument("--out", type=Path, default=PICTURE, help="the picture (default docs/discovery.png)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per run (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, each in its own process (default 2)")
    args = parser.parse_args(argv)
    knob = tuple(float(v) for v in args.own.split(",")) if args.own else QUICK_KNOB if args.quick else KNOB
    seeds = args.seeds or (1 if args.quick else 3)
    ari = sweep(knob, seeds, args.epochs, args.workers, args.threads)
    print(f"adjusted Rand index against the planted groups of synthetic (mean [lowest, highest] over {seeds} seeds, "
          f"{args.epochs} epochs)")
    print(table(knob, ari))
    for criterion, values in ari.items():
        print(f"{criterion}: {breakdown(knob, values)}")
    print(f"picture: {draw(knob, ari, seeds, args.epochs, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
