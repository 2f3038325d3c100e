"""Task affinity: what the look-ahead measurements cost next to the training they ride on, and how well the chosen
groups recover the planted ones of `synthetic` as its knob `own` grows.

    python bench/task_affinity.py [--every 10] [--quick] [--device cuda]   # the cost
    python bench/task_affinity.py --discovery [--own 0,1,2] [--seeds 3] [--epochs 10]

Cost: on digits (10 one-vs-all tasks, the CNN, batch 64), one measurement (a forward pass, one batched backward
for the 10 task gradients, 10 look-ahead forward passes) against `every` plain training steps; the bar is 2x
when measured every 10 steps with 10 tasks. Discovery: `recovery` is what bench/discovery.py calls per point.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Ratio, bench_arguments, bench_trainer, medians_in_turns, without_hooks  # noqa: E402
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


def lookahead_cost(every: int, rounds: int, device: str = "cpu") -> dict[str, float]:
    """Seconds of one measurement (default settings) and of one plain step, and the measurements' cost per
    `every` steps."""
    problem = load_problem("digits")
    strategy = TaskAffinity(problem, {"affinity_every": every}, 0)
    measuring = bench_trainer(problem, strategy, device=device)
    plain = without_hooks(bench_trainer(problem, TaskAffinity(problem, {}, 0), device=device))
    x, y = next(iter(torch.utils.data.DataLoader(problem.train, batch_size=64)))
    x, y = x.to(device), y.to(device)
    measure, step = medians_in_turns([lambda: strategy.measure(measuring.model), lambda: plain.train_step(x, y)],
                                     rounds=rounds, warmup=2)
    return {"measure_seconds": measure, "step_seconds": step, "ratio": measure / (every * step)}


def ratios(quick: bool = False, device: str = "cpu", every: int = 10, threads: int = 1) -> list[Ratio]:
    """The look-ahead measurements' cost next to the training they ride on (digits: 10 tasks)."""
    torch.set_num_threads(threads)
    cost = lookahead_cost(every, 3 if quick else 20, device)
    print(f"one look-ahead measurement (10 tasks, {TaskAffinity.defaults()['affinity_batch']} examples): "
          f"{cost['measure_seconds'] * 1e3:.1f} ms; one training step (64 examples): "
          f"{cost['step_seconds'] * 1e3:.1f} ms")
    return [Ratio("task_affinity", f"look-ahead measurements every {every} steps / the {every} steps (10 tasks)",
                  cost["ratio"], BAR)]


def main(argv=None) -> int:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=10, help="steps between measurements (default 10)")
    parser.add_argument("--discovery", action="store_true", help="the ARI per own value instead of the cost")
    parser.add_argument("--own", default="0,1,1.5,2,3", help="knob values for --discovery")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per knob value for --discovery")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per --discovery run (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    if args.discovery:
        torch.set_num_threads(args.threads)
        for own in (float(v) for v in args.own.split(",")):
            ari = [recovery(own, seed, args.epochs) for seed in range(args.seeds)]
            print(f"own={own:g}: ARI {statistics.mean(ari):.2f} [{min(ari):.2f}, {max(ari):.2f}] "
                  f"({', '.join(f'{a:.2f}' for a in ari)})", flush=True)
        return 0
    for ratio in ratios(args.quick, args.device, args.every, args.threads):
        print(ratio.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
