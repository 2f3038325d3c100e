"""Task affinity: what the look-ahead measurements cost next to the training they ride on, and how well the chosen
groups recover the planted ones of `synthetic` as its knob `own` grows.

    python bench/task_affinity.py [--every 10] [--rounds 20]          # the cost
    python bench/task_affinity.py --discovery [--own 0,1,2] [--seeds 3] [--epochs 10]

Cost: on digits (10 one-vs-all tasks, the CNN, batch 64), one measurement (a forward pass, one batched backward
for the 10 task gradients, 10 look-ahead forward passes) against `every` plain training steps; the bar is 2x
when measured every 10 steps with 10 tasks. Discovery: `recovery` is what bench/discovery.py calls per point.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_trainer, medians_in_turns, without_hooks  # noqa: E402
from mtlsearch.problems import load_problem  # noqa: E402
from mtlsearch.problems.builtin import synthetic  # noqa: E402
from mtlsearch.reproduce.experiments import group_labels  # noqa: E402
from mtlsearch.strategies.task_affinity import TaskAffinity  # noqa: E402
from mtlsearch.training import TrainConfig, Trainer  # noqa: E402

BAR = 2.0


def recovery(own: float, seed: int, epochs: int, settings: dict | None = None) -> float:
    """ARI of the groups task_affinity chooses on synthetic:own=<own>,seed=<seed> against the planted ones; the
    affinity is measured over all `epochs` (the switch is at the last epoch's end)."""
    problem = synthetic(own=own, seed=seed)
    strategy = TaskAffinity(problem, {"switch_epoch": epochs, **(settings or {})}, seed)
    Trainer(problem, strategy, TrainConfig(epochs=epochs), seed=seed, quiet=True, device="cpu").fit()
    return float(adjusted_rand_score(problem.true_groups, group_labels(strategy.groups, problem.task_names)))


def lookahead_cost(every: int, rounds: int) -> dict[str, float]:
    """Seconds of one measurement and of one plain step, and the measurements' cost per `every` steps."""
    problem = load_problem("digits")
    strategy = TaskAffinity(problem, {"affinity_every": every}, 0)
    measuring = bench_trainer(problem, strategy)
    plain = without_hooks(bench_trainer(problem, TaskAffinity(problem, {}, 0)))
    x, y = next(iter(torch.utils.data.DataLoader(problem.train, batch_size=64)))
    measure, step = medians_in_turns([lambda: strategy.measure(measuring.model), lambda: plain.train_step(x, y)],
                                     rounds=rounds, warmup=2)
    return {"measure_seconds": measure, "step_seconds": step, "ratio": measure / (every * step)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=10, help="steps between measurements (default 10)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--discovery", action="store_true", help="the ARI per own value instead of the cost")
    parser.add_argument("--own", default="0,1,1.5,2,3", help="knob values for --discovery")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per knob value for --discovery")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per --discovery run (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.discovery:
        for own in (float(v) for v in args.own.split(",")):
            ari = [recovery(own, seed, args.epochs) for seed in range(args.seeds)]
            print(f"own={own:g}: ARI {statistics.mean(ari):.2f} [{min(ari):.2f}, {max(ari):.2f}] "
                  f"({', '.join(f'{a:.2f}' for a in ari)})", flush=True)
        return 0
    cost = lookahead_cost(args.every, args.rounds)
    print(f"one look-ahead measurement (10 tasks): {cost['measure_seconds'] * 1e3:.1f} ms; one training step: "
          f"{cost['step_seconds'] * 1e3:.1f} ms")
    print(f"measurements every {args.every} steps cost {cost['ratio']:.2f}x the training they ride on "
          f"(bar <= {BAR:g}x): {'met' if cost['ratio'] <= BAR else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
