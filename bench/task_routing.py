"""Task Routing performance ratios, measured in one run and printed (targets from the Task Routing issue).

    python bench/task_routing.py [--quick] [--threads N] [--device D]     (about 3 minutes; --quick seconds)

1. TRL cost: one-task training step of the routed model / the same model with the TRLs (and task-balanced BN)
   replaced by the plain backbone layers; digits CNN (1x8x8) and VGG-11 (3x32x32), batch 64.   target <= 1.10
2. Task count: one-task training step with 312 binary tasks / with 10 tasks, same backbone.     target <= 1.20
3. Evaluation: the masked loop over the 10 tasks (every channel computed, then masked) / one all-task pass
   through the tasks' active channels (eval mode, sigma=0.4, partition).                         target >= 3
4. One-task pruned frozen model (sigma=0.5, partition): parameters and inference time / the full routed model
   (every channel computed, then masked); and, no bar, its time / the routed model's own sparse evaluation.
Timings alternate the two sides in rounds and take medians, so a busy machine slows both alike.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (Ratio, bench_arguments, bench_trainer, medians_in_turns, profile_markdown,
                          profile_step)
from mtlsearch.problems import Problem
from mtlsearch.reproduce.measure import Stepper, random_binary_problem
from mtlsearch.strategies.task_routing import TaskRouting
from mtlsearch.strategies.task_routing.norm import TaskBalancedBatchNorm
from mtlsearch.structure.freeze import freeze

BATCH = 64
WARMUP = 1  # untimed rounds before the alternating ones


DEVICE = "cpu"  # main's --device


def routed(problem: Problem, backbone: str, **config):
    """A Trainer of the routed model; its train_step draws one task per batch (Algorithm 1)."""
    return bench_trainer(problem, TaskRouting(problem, config, seed=0), backbone, device=DEVICE)


def without_routing(model: nn.Module) -> nn.Module:
    """The same model with TRLs removed and plain BatchNorm in the trunk: the backbone without Task Routing."""
    for unit in model.trunk:
        unit.route = nn.Identity()
        if isinstance(unit.norm, TaskBalancedBatchNorm):
            norm = (nn.BatchNorm2d if unit.spec.type == "conv" else nn.BatchNorm1d)(unit.spec.width)
            norm = norm.to(unit.norm.weight.device)
            norm.weight, norm.bias = unit.norm.weight, unit.norm.bias
            unit.norm = norm
    return model


def one_task_steps(trainer, steps: int):
    """`steps` training steps as the trainer runs them under Algorithm 1: one task drawn per batch, its loss only."""
    step = Stepper(trainer)
    return lambda: [step() for _ in range(steps)]


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trl_cost(backbone: str, shape, steps: int, rounds: int) -> Ratio:
    problem = random_binary_problem(10, BATCH, shape)
    a, b = routed(problem, backbone), routed(problem, backbone)
    without_routing(b.model)  # in place: the optimiser's parameters stay the same
    ta, tb = medians_in_turns([one_task_steps(a, steps), one_task_steps(b, steps)], rounds, WARMUP)
    print(f"1. TRL cost, {backbone} {'x'.join(map(str, shape))}, batch 64, one task per step: "
          f"{ta / steps * 1e3:.2f} ms vs {tb / steps * 1e3:.2f} ms without TRL -> ratio {ta / tb:.3f} (target <= 1.10)")
    return Ratio("task_routing", f"one-task step with TRLs / without, {backbone}", ta / tb, 1.10)


def task_count(backbone: str, shape, steps: int, rounds: int) -> Ratio:
    small, large = random_binary_problem(10, BATCH, shape), random_binary_problem(312, BATCH, shape)
    trainer_a, trainer_b = routed(large, backbone, sigma=0.4), routed(small, backbone, sigma=0.4)
    ta, tb = medians_in_turns([one_task_steps(trainer_a, steps), one_task_steps(trainer_b, steps)], rounds, WARMUP)
    a, b = trainer_a.model, trainer_b.model
    print(f"2. task count, {backbone}: one-task step with 312 tasks {ta / steps * 1e3:.2f} ms vs 10 tasks "
          f"{tb / steps * 1e3:.2f} ms -> ratio {ta / tb:.3f} (target <= 1.20)")
    print(f"   parameters: trunk {params(a.trunk):,} vs {params(b.trunk):,}; per-task branches and heads "
          f"{params(a.heads):,} vs {params(b.heads):,} ({params(a.heads) // 312:,} per task); "
          f"mask and BN buffers {sum(x.numel() for x in a.buffers()):,} vs {sum(x.numel() for x in b.buffers()):,}")
    return Ratio("task_routing", f"one-task step, 312 tasks / 10 tasks, {backbone}", ta / tb, 1.20)


SIGMA = 0.4  # the evaluation's sharing ratio (T=10: 0.46 C channels a layer per task)


@torch.no_grad()
def evaluation_calls(backbone: str, shape, batch: int):
    """(the masked loop over the 10 tasks, the one sparse all-task pass, the model) of one routed model in eval
    mode."""
    problem = random_binary_problem(10, batch, shape)
    model = routed(problem, backbone, sigma=SIGMA).model.eval()
    x = problem.val.tensors[0].to(DEVICE)
    return lambda: full_width(model, lambda: {t: model(x, [t])[t] for t in model.task_names}), lambda: model(x), model


def full_width(model, call):
    """`call` with the routed model's sparse evaluation off: each task's full-width pass, its mask applied by the
    TRLs (what the model computed before it evaluated through the active channels only)."""
    sparse, model.sparse = model.sparse, None
    try:
        return call()
    finally:
        model.sparse = sparse


def multiply_adds(model) -> tuple[int, int]:
    """Per-sample multiply-adds of (the masked loop, the sparse pass) over every task: the trunk's convolutions and
    linear layers (the sparse pass at its gathered widths, the layers before the first TRL once) and the heads.
    Their quotient is the best the sparse pass can do if only arithmetic counted."""
    sparse, tasks = model.sparse, len(model.task_names)
    shape, loop, pruned = tuple(model.backbone.input_shape), 0, 0
    for i, spec in enumerate(model.backbone.trunk):
        full = spec.multiply_adds(shape)
        loop += tasks * full
        if i <= sparse.first:
            pruned += full
        else:  # each task's active output channels reading its active input channels
            narrow = replace(spec, width=sparse.active[i].shape[1])
            pruned += tasks * narrow.multiply_adds((sparse.active[i - 1].shape[1], *shape[1:]))
        shape = spec.out_shape(shape)
    last = sparse.active[sparse.last]
    read = last.shape[1] * sparse.positions[sparse.last]  # the features the sparse pass's heads read
    for out in model.heads.out_features:
        weights = [shape for name, shape in model.heads.layout(out) if name == "head_weight" or
                   name.startswith("weight")]
        loop += sum(rows * columns for rows, columns in weights)
        (rows, columns), rest = weights[0], weights[1:]
        pruned += rows * min(columns, read) + sum(r * c for r, c in rest)
    return loop, pruned


def where_evaluation_time_goes(backbone: str, shape, batch: int) -> str:
    """Profiles of the masked loop and the sparse pass, per operator kind against a third of the loop (the bar)."""
    masked_loop, sparse_pass, model = evaluation_calls(backbone, shape, batch)
    with torch.no_grad():
        loop, sparse = profile_step(masked_loop, steps=3), profile_step(sparse_pass, steps=3)
    tasks = 10
    active = SIGMA + (1 - SIGMA) / tasks
    full, pruned = multiply_adds(model)
    return (f"{backbone}, {tasks} tasks, batch {batch}, sigma={SIGMA} (partition): one profiled run of each (self CPU "
            f"time, 3 calls after a warm-up). A task's pass uses {active:.2f} of each layer's channels, so a "
            f"convolution between two routed layers costs about {active:.2f}^2 = {active ** 2:.2f} of the full one; "
            "what does not shrink so (the layers before the first TRL, run once, the first TRL's layer, the "
            "unrouted linear layers' outputs, the per-task heads) leaves the sparse pass "
            f"{full / 1e6:,.1f}M / {pruned / 1e6:,.1f}M multiply-adds per sample = {full / pruned:.2f}x fewer than the "
            "masked loop: the best it can do if only arithmetic counted. Per operator kind, a ratio above 1 is "
            "where the sparse pass spends more than a third of the masked loop.\n\n" +
            profile_markdown(sparse, loop, 1 / 3, ("sparse pass", "masked loop")))


def explanations(device: str = "cpu") -> dict[str, object]:
    """Each evaluation measure's profile, by its name in BENCH.md."""
    global DEVICE
    DEVICE = device
    return {evaluation_measure(b, n): lambda b=b, s=s, n=n: where_evaluation_time_goes(b, s, n)
            for b, s, n in (("cnn", (1, 8, 8), 256), ("cnn", (1, 8, 8), 32), ("vgg11", (3, 32, 32), 16))}


def evaluation(backbone: str, shape, rounds: int, batch: int) -> Ratio:
    masked_loop, sparse_pass, model = evaluation_calls(backbone, shape, batch)
    calls = 5 if backbone == "cnn" else 1  # a few-millisecond call is timed as a block of calls: jitter averages out
    with torch.no_grad():  # as evaluate() runs them (with gradients on, the gathered weights are rebuilt per call)
        tl, tb = (t / calls for t in medians_in_turns([lambda: [masked_loop() for _ in range(calls)],
                                                        lambda: [sparse_pass() for _ in range(calls)]], rounds, WARMUP))
    full, pruned = multiply_adds(model)
    print(f"3. evaluation, {backbone}, 10 tasks, sigma {SIGMA}, batch {batch}: masked loop over tasks "
          f"{tl * 1e3:.1f} ms vs one pass through the active channels {tb * 1e3:.1f} ms -> {tl / tb:.2f}x faster "
          f"(target >= 3; {full / pruned:.2f}x fewer multiply-adds)")
    return Ratio("task_routing", evaluation_measure(backbone, batch), tl / tb, 3.0, at_most=False,
                 note=f"{full / pruned:.2f}x fewer multiply-adds",
                 explain=lambda: where_evaluation_time_goes(backbone, shape, batch))


def evaluation_measure(backbone: str, batch: int) -> str:
    """An evaluation measure's name in BENCH.md."""
    return f"all-task evaluation, masked loop / sparse batched pass (sigma {SIGMA}), {backbone} batch {batch}"


@torch.no_grad()
def pruned(backbone: str, shape, rounds: int, batch: int = 64) -> list[Ratio]:
    problem = random_binary_problem(10, batch, shape)
    trainer = routed(problem, backbone, sigma=0.5)
    model = trainer.model.eval()
    structure, weights = trainer.strategy.structure(model)
    task = problem.task_names[0]
    full = freeze(structure, weights).to(DEVICE).eval()
    one = freeze(structure, weights, tasks=[task]).to(DEVICE).eval()
    x = problem.val.tensors[0].to(DEVICE)
    assert torch.allclose(one(x)[task], model(x, [task])[task], atol=1e-4)
    tp, tf, ts = medians_in_turns([lambda: one(x), lambda: full_width(model, lambda: model(x, [task])),
                                   lambda: model(x, [task])], rounds, WARMUP)
    print(f"4. pruned one-task frozen model, {backbone}, sigma=0.5, batch {batch}: parameters {params(one):,} vs "
          f"{params(model):,} routed ({params(full):,} full frozen) -> ratio {params(one) / params(model):.3f}; "
          f"inference {tp * 1e3:.2f} ms vs {tf * 1e3:.2f} ms routed at full width, one task -> ratio {tp / tf:.3f} "
          f"(targets < 1); {ts * 1e3:.2f} ms for the routed model's own sparse evaluation -> {tp / ts:.3f}")
    return [Ratio("task_routing", f"pruned one-task frozen model parameters / routed model, {backbone}",
                  params(one) / params(model), 1.0),
            Ratio("task_routing", f"pruned one-task frozen model inference / full-width routed model (one task), "
                  f"{backbone}", tp / tf, 1.0),
            Ratio("task_routing", f"pruned one-task frozen model inference / the routed model's sparse evaluation "
                  f"(one task), {backbone}", tp / ts, None,
                  note="the routed model evaluates through the task's active channels too: the same arithmetic")]


def ratios(quick: bool = False, device: str = "cpu", threads: int = 1) -> list[Ratio]:
    global DEVICE
    DEVICE = device
    torch.set_num_threads(threads)
    rounds = 1 if quick else 11
    cnn, vgg = ("cnn", (1, 8, 8)), ("vgg11", (3, 32, 32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")
    out = [trl_cost(*cnn, steps=2 if quick else 40, rounds=rounds)]
    if not quick:
        out.append(trl_cost(*vgg, steps=2, rounds=rounds))
    out.append(task_count(*cnn, steps=2 if quick else 40, rounds=rounds))
    if not quick:
        out.append(task_count(*vgg, steps=2, rounds=5))
    out.append(evaluation(*cnn, rounds=rounds, batch=32 if quick else 256))  # 256: evaluate()'s batch size
    if not quick:
        out += [evaluation(*cnn, rounds=rounds, batch=32), evaluation(*vgg, rounds=5, batch=16)]
    out += pruned(*cnn, rounds=1 if quick else rounds * 4)
    if not quick:
        out += pruned(*vgg, rounds=rounds)
    return out


def main(argv=None) -> None:
    p = bench_arguments(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a busy machine more threads make timings erratic)")
    args = p.parse_args(argv)
    ratios(args.quick, args.device, args.threads)


if __name__ == "__main__":
    main()
