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
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtlsearch.backbones import get_backbone  # noqa: E402
from mtlsearch.problems import Problem, Task  # noqa: E402
from mtlsearch.problems.data import tensor_dataset  # noqa: E402
from mtlsearch.strategies.task_routing import TaskRouting  # noqa: E402
from mtlsearch.strategies.task_routing.norm import TaskBalancedBatchNorm  # noqa: E402
from mtlsearch.structure.freeze import freeze  # noqa: E402


def binary_problem(n_tasks: int, shape: tuple[int, ...], n: int = 256) -> Problem:
    """Random images with n_tasks random binary labels: only the shapes matter for timing."""
    rng = np.random.default_rng(0)
    data = tensor_dataset(rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, 2, (n, n_tasks)))
    tasks = [Task(f"attr{i}", "binary") for i in range(n_tasks)]
    return Problem(f"binary{n_tasks}", tasks, data, data, data, input_shape=shape)


def routed(problem: Problem, backbone: str, **config):
    strategy = TaskRouting(problem, config, seed=0)
    torch.manual_seed(0)
    return strategy, strategy.build(get_backbone(backbone, problem.input_shape))


def without_routing(model: nn.Module) -> nn.Module:
    """The same model with TRLs removed and plain BatchNorm in the trunk: the backbone without Task Routing."""
    for unit in model.trunk:
        unit.route = nn.Identity()
        if isinstance(unit.norm, TaskBalancedBatchNorm):
            norm = (nn.BatchNorm2d if unit.spec.type == "conv" else nn.BatchNorm1d)(unit.spec.width)
            norm.weight, norm.bias = unit.norm.weight, unit.norm.bias
            unit.norm = norm
    return model


class OneTaskSteps:
    """Training steps as the trainer runs them under Algorithm 1: one task drawn per batch, its loss only."""

    def __init__(self, problem: Problem, model: nn.Module, batch: int = 64):
        self.model, self.problem = model.train(), problem
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = problem.train.tensors
        self.x, self.y = x[:batch], y[:batch]
        self.rng = np.random.default_rng(0)

    def __call__(self, steps: int) -> None:
        for _ in range(steps):
            t = int(self.rng.integers(len(self.problem.tasks)))
            task = self.problem.tasks[t]
            loss = task.loss(self.model(self.x, [task.name])[task.name], self.y[:, t])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def paired_medians(a, b, rounds: int, warmup: int = 2) -> tuple[float, float]:
    """Median seconds of a() and b(), alternated for `rounds` rounds after warm-up."""
    for _ in range(warmup):
        a(), b()
    times = ([], [])
    for r in range(rounds):
        for f, out in ((a, times[0]), (b, times[1])) if r % 2 == 0 else ((b, times[1]), (a, times[0])):
            started = time.perf_counter()
            f()
            out.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trl_cost(backbone: str, shape, steps: int, rounds: int) -> None:
    problem = binary_problem(10, shape)
    _, a = routed(problem, backbone)
    _, b = routed(problem, backbone)
    step_a, step_b = OneTaskSteps(problem, a), OneTaskSteps(problem, without_routing(b))
    ta, tb = paired_medians(lambda: step_a(steps), lambda: step_b(steps), rounds)
    print(f"1. TRL cost, {backbone} {'x'.join(map(str, shape))}, batch 64, one task per step: "
          f"{ta / steps * 1e3:.2f} ms vs {tb / steps * 1e3:.2f} ms without TRL -> ratio {ta / tb:.3f} (target <= 1.10)")


def task_count(backbone: str, shape, steps: int, rounds: int) -> None:
    small, large = binary_problem(10, shape), binary_problem(312, shape)
    (_, a), (_, b) = routed(large, backbone, sigma=0.4), routed(small, backbone, sigma=0.4)
    step_a, step_b = OneTaskSteps(large, a), OneTaskSteps(small, b)
    ta, tb = paired_medians(lambda: step_a(steps), lambda: step_b(steps), rounds)
    print(f"2. task count, {backbone}: one-task step with 312 tasks {ta / steps * 1e3:.2f} ms vs 10 tasks "
          f"{tb / steps * 1e3:.2f} ms -> ratio {ta / tb:.3f} (target <= 1.20)")
    print(f"   parameters: trunk {params(a.trunk):,} vs {params(b.trunk):,}; per-task branches and heads "
          f"{params(a.heads):,} vs {params(b.heads):,} ({params(a.heads) // 312:,} per task); "
          f"mask and BN buffers {sum(x.numel() for x in a.buffers()):,} vs {sum(x.numel() for x in b.buffers()):,}")


@torch.no_grad()
def evaluation(backbone: str, shape, rounds: int, batch: int) -> None:
    problem = binary_problem(10, shape, n=batch)
    _, model = routed(problem, backbone)
    model.eval()
    x = problem.val.tensors[0]
    loop = lambda: {t: model(x, [t])[t] for t in model.task_names}  # noqa: E731
    tl, tb = paired_medians(loop, lambda: model(x), rounds)
    print(f"3. evaluation, {backbone}, 10 tasks, batch {batch}: loop over tasks {tl * 1e3:.1f} ms vs one batched "
          f"pass {tb * 1e3:.1f} ms -> {tl / tb:.2f}x faster (target >= 3)")


@torch.no_grad()
def pruned(backbone: str, shape, rounds: int, batch: int = 64) -> None:
    problem = binary_problem(10, shape, n=batch)
    strategy, model = routed(problem, backbone, sigma=0.5)
    model.eval()
    structure, weights = strategy.structure(model)
    task = problem.task_names[0]
    full, one = freeze(structure, weights).eval(), freeze(structure, weights, tasks=[task]).eval()
    x = problem.val.tensors[0]
    assert torch.allclose(one(x)[task], model(x, [task])[task], atol=1e-4)
    tp, tf = paired_medians(lambda: one(x), lambda: model(x, [task]), rounds)
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
