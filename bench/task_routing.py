"""Task Routing performance ratios, measured in one run and printed (targets from the Task Routing issue).

    python bench/task_routing.py [--quick] [--threads N]     (about 3 minutes; --quick about 1)

1. TRL cost: one-task training step of the routed model / the same model with the TRLs (and task-balanced BN)
   replaced by the plain backbone layers; digits CNN (1x8x8) and VGG-11 (3x32x32), batch 64.   target <= 1.10
2. Task count: one-task training step with 312 binary tasks / with 10 tasks, same backbone.     target <= 1.20
3. Evaluation: a Python loop over the 10 tasks / one batched all-task pass (eval mode).         target >= 3
4. One-task pruned frozen model (sigma=0.5, partition): parameters and inference time / the full routed model.
Timings alternate the two sides in rounds and take medians, so a busy machine slows both alike.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_trainer, medians_in_turns
from mtlsearch.problems import Problem
from mtlsearch.reproduce.measure import Stepper, random_binary_problem
from mtlsearch.strategies.task_routing import TaskRouting
from mtlsearch.strategies.task_routing.norm import TaskBalancedBatchNorm
from mtlsearch.structure.freeze import freeze

BATCH = 64
WARMUP = 2  # untimed rounds before the alternating ones


def routed(problem: Problem, backbone: str, **config):
    """A Trainer of the routed model; its train_step draws one task per batch (Algorithm 1)."""
    return bench_trainer(problem, TaskRouting(problem, config, seed=0), backbone)


def without_routing(model: nn.Module) -> nn.Module:
    """The same model with TRLs removed and plain BatchNorm in the trunk: the backbone without Task Routing."""
    for unit in model.trunk:
        unit.route = nn.Identity()
        if isinstance(unit.norm, TaskBalancedBatchNorm):
            norm = (nn.BatchNorm2d if unit.spec.type == "conv" else nn.BatchNorm1d)(unit.spec.width)
            norm.weight, norm.bias = unit.norm.weight, unit.norm.bias
            unit.norm = norm
    return model


def one_task_steps(trainer, steps: int):
    """`steps` training steps as the trainer runs them under Algorithm 1: one task drawn per batch, its loss only."""
    step = Stepper(trainer)
    return lambda: [step() for _ in range(steps)]


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trl_cost(backbone: str, shape, steps: int, rounds: int) -> None:
    problem = random_binary_problem(10, BATCH, shape)
    a, b = routed(problem, backbone), routed(problem, backbone)
    without_routing(b.model)  # in place: the optimiser's parameters stay the same
    ta, tb = medians_in_turns([one_task_steps(a, steps), one_task_steps(b, steps)], rounds, WARMUP)
    print(f"1. TRL cost, {backbone} {'x'.join(map(str, shape))}, batch 64, one task per step: "
          f"{ta / steps * 1e3:.2f} ms vs {tb / steps * 1e3:.2f} ms without TRL -> ratio {ta / tb:.3f} (target <= 1.10)")


def task_count(backbone: str, shape, steps: int, rounds: int) -> None:
    small, large = random_binary_problem(10, BATCH, shape), random_binary_problem(312, BATCH, shape)
    trainer_a, trainer_b = routed(large, backbone, sigma=0.4), routed(small, backbone, sigma=0.4)
    ta, tb = medians_in_turns([one_task_steps(trainer_a, steps), one_task_steps(trainer_b, steps)], rounds, WARMUP)
    a, b = trainer_a.model, trainer_b.model
    print(f"2. task count, {backbone}: one-task step with 312 tasks {ta / steps * 1e3:.2f} ms vs 10 tasks "
          f"{tb / steps * 1e3:.2f} ms -> ratio {ta / tb:.3f} (target <= 1.20)")
    print(f"   parameters: trunk {params(a.trunk):,} vs {params(b.trunk):,}; per-task branches and heads "
          f"{params(a.heads):,} vs {params(b.heads):,} ({params(a.heads) // 312:,} per task); "
          f"mask and BN buffers {sum(x.numel() for x in a.buffers()):,} vs {sum(x.numel() for x in b.buffers()):,}")


@torch.no_grad()
def evaluation(backbone: str, shape, rounds: int, batch: int) -> None:
    problem = random_binary_problem(10, batch, shape)
    model = routed(problem, backbone).model.eval()
    x = problem.val.tensors[0]
    loop = lambda: {t: model(x, [t])[t] for t in model.task_names}
    tl, tb = medians_in_turns([loop, lambda: model(x)], rounds, WARMUP)
    print(f"3. evaluation, {backbone}, 10 tasks, batch {batch}: loop over tasks {tl * 1e3:.1f} ms vs one batched "
          f"pass {tb * 1e3:.1f} ms -> {tl / tb:.2f}x faster (target >= 3)")


@torch.no_grad()
def pruned(backbone: str, shape, rounds: int, batch: int = 64) -> None:
    problem = random_binary_problem(10, batch, shape)
    trainer = routed(problem, backbone, sigma=0.5)
    model = trainer.model.eval()
    structure, weights = trainer.strategy.structure(model)
    task = problem.task_names[0]
    full, one = freeze(structure, weights).eval(), freeze(structure, weights, tasks=[task]).eval()
    x = problem.val.tensors[0]
    assert torch.allclose(one(x)[task], model(x, [task])[task], atol=1e-4)
    tp, tf = medians_in_turns([lambda: one(x), lambda: model(x, [task])], rounds, WARMUP)
    print(f"4. pruned one-task frozen model, {backbone}, sigma=0.5, batch {batch}: parameters {params(one):,} vs "
          f"{params(model):,} routed ({params(full):,} full frozen) -> ratio {params(one) / params(model):.3f}; "
          f"inference {tp * 1e3:.2f} ms vs {tf * 1e3:.2f} ms routed, one task -> ratio {tp / tf:.3f} (targets < 1)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, digits CNN only for the slow parts")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a busy machine more threads make timings erratic)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 5 if args.quick else 11
    cnn, vgg = ("cnn", (1, 8, 8)), ("vgg11", (3, 32, 32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    trl_cost(*cnn, steps=40, rounds=rounds)
    trl_cost(*vgg, steps=1 if args.quick else 2, rounds=rounds)
    task_count(*cnn, steps=40, rounds=rounds)
    if not args.quick:
        task_count(*vgg, steps=2, rounds=5)
    evaluation(*cnn, rounds=rounds, batch=256)  # evaluate()'s batch size
    evaluation(*cnn, rounds=rounds, batch=32)
    evaluation(*vgg, rounds=3 if args.quick else 5, batch=16)
    pruned(*cnn, rounds=rounds * 4)
    pruned(*vgg, rounds=rounds)


if __name__ == "__main__":
    main()
