"""SFG performance ratios, measured in one run (batch 64):

- training step (Trainer.train_step: forward, loss with the SFG regularisers, backward, Adam step) of SFG over
  (T + 1) x the hard-sharing step on the same backbone; bar <= 1.2;
- inference of the frozen argmax model over the hard-sharing model of the same widths (both BlockNetworks in
  eval mode); bar <= 1.1;

for T = 2 and T = 10 tasks on the digits CNN (1x8x8) and VGG-11 at 32x32; and, reported without a bar, SFG at a
CelebA-sized T = 40 on VGG-11: its step over (T + 1) hard-sharing steps and the growth of its peak memory over hard
sharing's, each model in a fresh process (MANY_TASKS). The SFG allocation starts from
Dirichlet(1, ..., 1) draws, so the frozen model has kernels in every group (uniform p would put every kernel in
the shared group). Calls alternate between the two models; a ratio is the median over the SFG calls of the SFG
time over the mean of the two hard-sharing calls around it (robust to other load on the machine); the times
printed are each model's fastest call.

    python bench/sfg.py            # about 7-8 minutes on 2 idle cores (T = 40: about 4)
    python bench/sfg.py --quick    # fewer repetitions, the CNN at T = 2 only (and T = 4 for T = 40)
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import mtlsearch  # noqa: F401  before torch: it puts torch's large CPU tensors on huge pages, as for the CLI
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (Ratio, bench_arguments, bench_trainer, kernel_time, medians_in_turns, memory_gib,
                          profile_markdown, profile_step, seconds)
from mtlsearch.backbones import get_backbone
from mtlsearch.reproduce.measure import Stepper, random_binary_problem
from mtlsearch.strategies import get_strategy
from mtlsearch.structure.freeze import freeze

BATCH = 64
CASES = [("cnn", (1, 8, 8), 2), ("cnn", (1, 8, 8), 10), ("vgg11", (3, 32, 32), 2), ("vgg11", (3, 32, 32), 10)]
TRAIN_TARGET, FROZEN_TARGET = 1.2, 1.1


def paired(baseline, candidate, repeats: int) -> tuple[float, float, float]:
    """(baseline seconds, candidate seconds, candidate / baseline): calls alternate b, c, b, c, ..., b after one
    warm-up each; each candidate call is compared with the mean of the baseline calls around it, and the median
    of those ratios is reported (robust to load that drifts during the run). Times are the fastest calls."""
    baseline()
    candidate()
    base, cand = [seconds(baseline)], []
    for _ in range(repeats):
        cand.append(seconds(candidate))
        base.append(seconds(baseline))
    ratios = [c / ((b0 + b1) / 2) for c, b0, b1 in zip(cand, base, base[1:])]
    return min(base), min(cand), statistics.median(ratios)


def run_case(backbone: str, shape, tasks: int, repeats: int, combine: str = "conv1x1", device: str = "cpu") -> dict:
    problem = random_binary_problem(tasks, BATCH, shape)
    sfg = get_strategy("sfg")(problem, {"p_init": "dirichlet", "combine": combine}, seed=0)
    hard_trainer = bench_trainer(problem, get_strategy("hard_sharing")(problem, {}, seed=0), backbone, device=device)
    sfg_trainer = bench_trainer(problem, sfg, backbone, device=device)
    hard_train, sfg_train, train_ratio = paired(Stepper(hard_trainer), Stepper(sfg_trainer), repeats)
    hard_model, sfg_model = hard_trainer.model.eval(), sfg_trainer.model.eval()
    structure, weights = sfg.structure(sfg_model)
    frozen = freeze(structure, weights).to(device).eval()
    x = problem.test.tensors[0].to(device)
    calls = 25 if backbone == "cnn" else 1  # a few-millisecond pass is timed as a block of calls: jitter averages out
    with torch.no_grad():
        hard_infer, frozen_infer, infer_ratio = paired(lambda: [hard_model(x) for _ in range(calls)],
                                                       lambda: [frozen(x) for _ in range(calls)], 3 * repeats)
    return {"train_hard": hard_train, "train_sfg": sfg_train, "train_ratio": train_ratio / (tasks + 1),
            "infer_hard": hard_infer / calls, "infer_frozen": frozen_infer / calls, "infer_ratio": infer_ratio}


def where_time_goes(backbone: str, shape, tasks: int, combine: str = "conv1x1", device: str = "cpu") -> str:
    """Profiles of one SFG and one hard-sharing training step (torch.profiler, self CPU time), side by side per
    operator kind against (T + 1) x hard sharing, the bar's unit: which kinds exceed it."""
    problem = random_binary_problem(tasks, BATCH, shape)
    sfg = get_strategy("sfg")(problem, {"p_init": "dirichlet", "combine": combine}, seed=0)
    hard = profile_step(Stepper(bench_trainer(problem, get_strategy("hard_sharing")(problem, {}, seed=0), backbone,
                                              device=device)))
    sfg_step = Stepper(bench_trainer(problem, sfg, backbone, device=device))
    mine = profile_step(sfg_step)
    share = mine["kinds"].get("convolution", 0.0) / mine["total"]
    stacked, kernel = stacked_batch_cost(backbone, shape, tasks, device, sfg_step)
    mix = ""
    if combine == "conv1x1":
        summed = get_strategy("sfg")(problem, {"p_init": "dirichlet", "combine": "sum"}, seed=0)
        with_mix, with_sum = medians_in_turns(
            [sfg_step, Stepper(bench_trainer(problem, summed, backbone, device=device))], rounds=2, warmup=1)
        mix = (f" The learned stream mix (A_t y_t + B_t y_0 between trunk layers, SFG's default) adds "
               f"{mix_share(backbone, shape, tasks):.0%} to the grouped layers' forward multiply-adds; SFG's step "
               f"with the plain sum instead (combine=sum) took {with_sum / with_mix:.2f} of its step with the mix.")
    return (f"{backbone}, T={tasks}, batch {BATCH}: one SFG and one hard-sharing training step profiled (self CPU "
            f"time, 3 steps after a warm-up). Convolutions are {share:.0%} of SFG's step. The bar allows "
            f"{TRAIN_TARGET:g} x (T+1) x hard sharing's step; per operator kind, a ratio above 1 is where SFG does "
            "more than T+1 copies of hard sharing would. SFG's layers run the T+1 streams as one batch of "
            f"(T+1) x {BATCH} = {(tasks + 1) * BATCH}: hard sharing's own step on a batch that size took "
            f"{stacked:.2f} x its (T+1) steps on batches of {BATCH} (the median of 3 pairs), what the larger "
            "activations cost before SFG does anything of its own." + kernel + mix + "\n\n" +
            profile_markdown(mine, hard, tasks + 1, ("SFG", "hard sharing")))


def mix_share(backbone: str, shape, tasks: int) -> float:
    """The stream mix's forward multiply-adds per sample (2 C^2 a position for each task, after every trunk layer
    but the last) over the grouped layers' own (each layer's op on all T+1 streams)."""
    trunk, layers, mix = get_backbone(backbone, shape).trunk, 0, 0
    for i, spec in enumerate(trunk):
        out = spec.out_shape(shape)
        layers += (tasks + 1) * spec.multiply_adds(shape)
        if i < len(trunk) - 1:
            mix += tasks * 2 * spec.width ** 2 * math.prod(out[1:])
        shape = out
    return mix / layers


def stacked_batch_cost(backbone: str, shape, tasks: int, device: str = "cpu", sfg_step=None,
                       pairs: int = 3) -> tuple[float, str]:
    """Hard sharing's step on one batch of (T+1) x BATCH over its T+1 steps on batches of BATCH (in turns), and a
    sentence on the kernel's share of one such step and of `sfg_step` (page faults: memory freed and asked again)."""
    small, large = random_binary_problem(tasks, BATCH, shape), random_binary_problem(tasks, BATCH * (tasks + 1), shape)
    one, stacked = (Stepper(bench_trainer(p, get_strategy("hard_sharing")(p, {}, seed=0), backbone, device=device))
                    for p in (small, large))
    one(), stacked()
    ratios = []
    for _ in range(pairs):
        separate = seconds(lambda: [one() for _ in range(tasks + 1)])
        ratios.append(seconds(stacked) / separate)
    counts = {"SFG's step": kernel_time(sfg_step) if sfg_step else None,
              "hard sharing's step on the stacked batch": kernel_time(stacked),
              f"hard sharing's {tasks + 1} steps on batches of {BATCH}":
                  kernel_time(lambda: [one() for _ in range(tasks + 1)])}
    parts = [f"{name}: {c['system']:.2f} s of {c['seconds']:.2f} s in the kernel, {c['faults']:,} page faults"
             for name, c in counts.items() if c is not None]
    kernel = (" Time in the operating system's kernel (page faults: the allocator returned large freed blocks to "
              "the OS and the next step asks for them again): " + "; ".join(parts) + ".") if parts else ""
    return statistics.median(ratios), kernel


def where_inference_time_goes(backbone: str, shape, tasks: int, combine: str = "conv1x1", device: str = "cpu") -> str:
    """Profiles of the frozen SFG argmax model's and the hard-sharing model's forward pass on the test batch, per
    operator kind: what the frozen model's extra time is."""
    problem = random_binary_problem(tasks, BATCH, shape)
    sfg = get_strategy("sfg")(problem, {"p_init": "dirichlet", "combine": combine}, seed=0)
    hard_model = bench_trainer(problem, get_strategy("hard_sharing")(problem, {}, seed=0), backbone,
                               device=device).model.eval()
    structure, weights = sfg.structure(bench_trainer(problem, sfg, backbone, device=device).model.eval())
    frozen = freeze(structure, weights).to(device).eval()
    x = problem.test.tensors[0].to(device)
    with torch.no_grad():
        hard, mine = profile_step(lambda: hard_model(x), steps=20), profile_step(lambda: frozen(x), steps=20)
    calls = sum(1 for name in mine["ops"] if "conv" in name)
    steps = [len(model.fused.steps) if model.fused is not None else None for model in (frozen, hard_model)]
    return (f"{backbone}, T={tasks}, batch {BATCH}: one forward pass of each model profiled (self CPU time, 20 "
            f"passes after a warm-up; {len(mine['ops'])} operator kinds in the frozen model's, {calls} of them "
            "convolutions). The bar allows "
            f"{FROZEN_TARGET:g} x hard sharing's pass; per operator kind, a ratio above 1 is where the frozen model "
            f"spends more than hard sharing. The frozen model's pass takes {steps[0]} steps (a step: one layer's "
            f"blocks as one call, or a block alone where merging it would multiply more zeros than a call costs), "
            f"hard sharing's {steps[1]}: where the operators' time is no more than hard sharing's, the rest of the "
            "wall-clock ratio is the extra steps' Python and dispatch.\n\n" +
            profile_markdown(mine, hard, 1, ("frozen SFG", "hard sharing")))


MANY_TASKS = ("vgg11", (3, 32, 32), 40)  # a CelebA-sized task count: reported (step time and peak memory), no bar


def step_and_memory(method: str, backbone: str, shape, tasks: int, steps: int, device: str) -> dict:
    """In a fresh process: the median seconds of `steps` training steps (after one) and the growth of peak resident
    memory from building the trainer through the steps."""
    from mtlsearch.reproduce.measure import peak_rss, reset_peak_rss

    problem = random_binary_problem(tasks, BATCH, shape)
    config = {"p_init": "dirichlet"} if method == "sfg" else {}
    baseline = reset_peak_rss()
    step = Stepper(bench_trainer(problem, get_strategy(method)(problem, config, seed=0), backbone, device=device))
    step()
    times = [seconds(step) for _ in range(steps)]
    peak = peak_rss()
    return {"seconds": statistics.median(times),
            "peak_growth": None if baseline is None or peak is None else max(peak - baseline, 0)}


def many_tasks(quick: bool = False, device: str = "cpu", echo=print) -> list[Ratio]:
    """SFG at MANY_TASKS against hard sharing: step time over (T+1) hard-sharing steps and peak memory, each model
    in its own fresh process (spawned, so its peak memory is its own)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    backbone, shape, tasks = ("cnn", (1, 8, 8), 4) if quick else MANY_TASKS
    found = {}
    for method in ("hard_sharing", "sfg"):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
            found[method] = fresh.submit(step_and_memory, method, backbone, shape, tasks, 1 if quick else 2,
                                         device).result()
    hard, sfg = found["hard_sharing"], found["sfg"]
    step_ratio = sfg["seconds"] / ((tasks + 1) * hard["seconds"])
    gib = {k: (v["peak_growth"] or 0) / 2 ** 30 for k, v in found.items()}
    echo(f"{backbone} T={tasks}: SFG step {sfg['seconds']:.3g} s, hard sharing {hard['seconds']:.3g} s -> "
         f"{step_ratio:.3f} of (T+1) hard steps; peak memory growth {gib['sfg']:.2f} GiB vs {gib['hard_sharing']:.2f}")
    rows = [Ratio("sfg", f"SFG step / ((T+1) x hard-sharing step), {backbone} T={tasks}", step_ratio, None,
                  note=f"{sfg['seconds']:.3g} s against {hard['seconds']:.3g} s a step")]
    if hard["peak_growth"] and sfg["peak_growth"] is not None:
        rows.append(Ratio("sfg", f"SFG peak memory / hard sharing's, {backbone} T={tasks}",
                          sfg["peak_growth"] / hard["peak_growth"], None,
                          note=f"growth of peak resident memory while building and stepping: {gib['sfg']:.2f} GiB "
                               f"against {gib['hard_sharing']:.2f} GiB" +
                               ("" if memory_gib() is None else f", on a machine of {memory_gib():.0f} GiB")))
    return rows


def measures(backbone: str, tasks: int) -> tuple[str, str]:
    """The names of a case's two measures in BENCH.md: (training step, exported inference)."""
    return (f"SFG step / ((T+1) x hard-sharing step), {backbone} T={tasks}",
            f"exported SFG argmax inference / hard sharing, {backbone} T={tasks}")


def explanations(device: str = "cpu", combine: str = "conv1x1") -> dict[str, object]:
    """Each measure's profile, by the measure's name in BENCH.md (run when its bar is not met)."""
    found = {}
    for backbone, shape, tasks in CASES:
        train, infer = measures(backbone, tasks)
        found[train] = lambda b=backbone, s=shape, t=tasks: where_time_goes(b, s, t, combine, device)
        found[infer] = lambda b=backbone, s=shape, t=tasks: where_inference_time_goes(b, s, t, combine, device)
    return found


def ratios(quick: bool = False, device: str = "cpu", combine: str = "conv1x1", echo=print) -> list[Ratio]:
    cases = CASES[:1] if quick else CASES
    echo(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, combine={combine}, {device}")
    echo(f"{'backbone':<8} {'T':>3} {'hard step':>10} {'SFG step':>10} {'SFG/((T+1) hard)':>17} "
         f"{'hard infer':>11} {'frozen infer':>13} {'frozen/hard':>12}")
    out, explain = [], explanations(device, combine)
    for backbone, shape, tasks in cases:
        if backbone == "cnn":
            repeats = 1 if quick else 10
        else:
            repeats = 4 if tasks == 2 else 2
        r = run_case(backbone, shape, tasks, repeats, combine, device)
        echo(f"{backbone:<8} {tasks:>3} {r['train_hard'] * 1e3:>8.1f}ms {r['train_sfg'] * 1e3:>8.1f}ms "
             f"{r['train_ratio']:>17.3f} {r['infer_hard'] * 1e3:>9.2f}ms {r['infer_frozen'] * 1e3:>11.2f}ms "
             f"{r['infer_ratio']:>12.3f}")
        train, infer = measures(backbone, tasks)
        out += [Ratio("sfg", train, r["train_ratio"], TRAIN_TARGET, explain=explain[train]),
                Ratio("sfg", infer, r["infer_ratio"], FROZEN_TARGET, explain=explain[infer])]
    return out + many_tasks(quick, device, echo)


def main(argv=None) -> int:
    parser = bench_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--combine", choices=("conv1x1", "sum"), default="conv1x1",
                        help="how SFG builds the next task streams (default conv1x1, the SFG default)")
    args = parser.parse_args(argv)
    for ratio in ratios(args.quick, args.device, args.combine, echo=lambda line: print(line, flush=True)):
        print(ratio.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
