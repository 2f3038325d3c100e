"""Selective Sharing bench on digits: every ratio the issue asks for, measured in one run and printed.

    python bench/selective_sharing.py [--quick] [--epochs N] [--seed S] [--threads T] [--device D]

Torch runs with one intra-op thread by default (--threads to change): on a shared machine several threads
fighting for cores make single timings swing tenfold, and every number here is a ratio anyway.

1. factorisation + clustering time / the epoch's training time (target <= 5%), per clustering epoch;
2. gradient capture (the before_step hook) time / a plain training step's time (target <= 10%);
3. epoch time and parameter count after merging / before (the paper: both fall as branches merge).
"""
from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Ratio, bench_arguments, bench_trainer, medians_in_turns, without_hooks
from mtlsearch.problems import load_problem
from mtlsearch.problems.data import batches
from mtlsearch.strategies.selective_sharing import SelectiveSharing
from mtlsearch.strategies.selective_sharing.capture import BranchGradients, gradients_finite
from mtlsearch.strategies.selective_sharing.merging import branch_nodes
from mtlsearch.structure.network import module_key
from mtlsearch.training import TrainConfig, Trainer, evaluate

SETTINGS = {"criterion": "similarity"}


def capture_overhead(problem, seed: int, steps: int, device: str = "cpu") -> dict[str, float]:
    """Median seconds of a plain training step (Trainer.train_step without the strategy's hooks), of the whole
    before_step hook (non-finite check + capture) and of its two parts, on a fresh unmerged model with capture
    on; the timings take turns step by step."""
    strategy = SelectiveSharing(problem, SETTINGS, seed)
    trainer = without_hooks(bench_trainer(problem, strategy, seed=seed, device=device))
    model = trainer.model.train()
    capture = BranchGradients([module_key(branch_nodes([task], trainer.backbone)[0]) for task in problem.task_names])
    data = itertools.cycle(list(batches(problem.train, 64, True, torch.Generator().manual_seed(0), device=device)))
    parts = {"step": lambda: trainer.train_step(*next(data)), "hook": lambda: strategy.before_step(model),
             "check": lambda: gradients_finite(model), "sums": lambda: capture.add(model)}
    return dict(zip(parts, medians_in_turns(list(parts.values()), steps, alternate=False)))


def ratios(quick: bool = False, device: str = "cpu", epochs: int | None = None, seed: int = 0,
           threads: int = 1) -> list[Ratio]:
    torch.set_num_threads(threads)
    epochs = epochs or (1 if quick else 8)
    steps, repeats = (3, 1) if quick else (200, 5)

    problem = load_problem("digits")
    hook = capture_overhead(problem, seed, steps, device)
    strategy = SelectiveSharing(problem, SETTINGS, seed)
    trainer = Trainer(problem, strategy, TrainConfig(epochs=epochs), seed=seed, quiet=True, device=device)
    params_before = trainer.params()
    best = trainer.fit()
    test = evaluate(trainer.model, problem, "test", device=trainer.device)

    print(f"selective_sharing on digits, similarity, {epochs} epochs, seed {seed}, {threads} thread(s): "
          f"test score {test['score']:.4f}, best epoch {best['epoch']}, lock epoch {strategy.lock_epoch}")
    print(f"final groups: {strategy.groups}")
    shares = []
    for h in strategy.history:
        if h["clustered"]:
            shares.append(h["analysis_seconds"] / h["epoch_seconds"])
            print(f"  epoch {h['epoch']}: factorisation + clustering {h['analysis_seconds'] * 1e3:.1f} ms, "
                  f"epoch {h['epoch_seconds']:.3f} s, ratio {shares[-1]:.4f}, branches {h['branches']}")
    if shares:
        print(f"ratio factorisation+clustering / epoch time: median {statistics.median(shares):.4f}, "
              f"max {max(shares):.4f} (target <= 0.05)")
    print(f"ratio gradient capture / training step: {hook['hook'] / hook['step']:.4f} (target <= 0.10; "
          f"hook {hook['hook'] * 1e3:.3f} ms = non-finite check {hook['check'] * 1e3:.3f} ms + running sums "
          f"{hook['sums'] * 1e3:.3f} ms; step {hook['step'] * 1e3:.2f} ms)")

    # plain training passes (Trainer.train_epoch without the hooks): the unmerged model as built, the merged one
    before = without_hooks(bench_trainer(problem, SelectiveSharing(problem, SETTINGS, seed), seed=seed))
    seconds_before, seconds_after = medians_in_turns([before.train_epoch, without_hooks(trainer).train_epoch],
                                                     repeats)
    params_after = trainer.params()
    print(f"ratio epoch time after / before merging: {seconds_after / seconds_before:.4f} "
          f"({seconds_after:.3f} s / {seconds_before:.3f} s, {len(problem.tasks)} -> {len(strategy.groups)} branches)")
    print(f"ratio parameters after / before merging: {params_after / params_before:.4f} "
          f"({params_after:,} / {params_before:,}; before = hard sharing with independent branches)")
    out = [Ratio("selective_sharing", "factorisation + clustering / epoch time (worst clustering epoch)",
                 max(shares), 0.05)] if shares else []
    return out + [
        Ratio("selective_sharing", "gradient capture / training step", hook["hook"] / hook["step"], 0.10),
        Ratio("selective_sharing", "epoch time after / before merging", seconds_after / seconds_before, None,
              note="the paper: falls as branches merge"),
        Ratio("selective_sharing", "parameters after / before merging", params_after / params_before, None)]


def main(argv=None) -> int:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="training epochs (default 8, quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    ratios(args.quick, args.device, args.epochs, args.seed, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
