"""What the benches share: timing calls in turns, Trainers whose train_step is the step being timed, and the
Ratio each bench returns (its value and its bar), which bench/all.py gathers into docs/BENCH.md.

Random problems and a Stepper (Trainer.train_step on a whole random batch) come from mtlsearch.reproduce.measure,
which measures the reproduction's step costs the same way.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mtlsearch.problems import Problem
from mtlsearch.strategies import get_strategy
from mtlsearch.strategies.base import Strategy
from mtlsearch.training import TrainConfig, Trainer


@dataclass(frozen=True)
class Ratio:
    """One measured ratio and its bar: met when `value <= bar` (`at_most`) or `value >= bar`."""

    bench: str
    measure: str
    value: float
    bar: float | None  # None: reported, no bar
    at_most: bool = True
    note: str = ""
    explain: Callable[[], str] | None = field(default=None, compare=False, repr=False)  # a profile, when not met

    @property
    def met(self) -> bool | None:
        if self.bar is None:
            return None
        return self.value <= self.bar if self.at_most else self.value >= self.bar

    def line(self) -> str:
        bar = "" if self.bar is None else f" (bar {'<=' if self.at_most else '>='} {self.bar:g}: " \
            f"{'met' if self.met else 'NOT met'})"
        return f"{self.measure}: {self.value:.3f}{bar}{'; ' + self.note if self.note else ''}"


def bench_arguments(description: str) -> argparse.ArgumentParser:
    """The options every bench takes: --quick (a smoke run) and --device (default cuda when present)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="few repetitions and the small cases only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda when present, else cpu)")
    return parser


def memory_gib() -> float | None:
    """The machine's physical memory in GiB, None where the OS does not say."""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    return None


def seconds(call: Callable[[], object]) -> float:
    """Wall-clock seconds of one call (on CUDA, until its kernels are done)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    call()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def kernel_time(call: Callable[[], object]) -> dict | None:
    """One call's wall-clock seconds, the system (kernel) CPU seconds in it and the minor page faults it took: memory
    the allocator gave back to the OS and asked for again. None where the OS does not count them."""
    try:
        import resource
    except ImportError:
        return None
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = seconds(call)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": wall, "system": after.ru_stime - before.ru_stime, "faults": after.ru_minflt - before.ru_minflt}


def medians_in_turns(calls: list[Callable[[], object]], rounds: int, warmup: int = 0,
                     alternate: bool = True) -> list[float]:
    """Median seconds of each call over `rounds` rounds (after `warmup` untimed ones) in which the calls take
    turns, so load that drifts slows them alike; `alternate` reverses the order every other round."""
    for _ in range(warmup):
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    for r in range(rounds):
        order = range(len(calls)) if r % 2 == 0 or not alternate else reversed(range(len(calls)))
        for i in order:
            times[i].append(seconds(calls[i]))
    return [statistics.median(t) for t in times]


def bench_trainer(problem: Problem, strategy: Strategy, backbone: str | None = None, seed: int = 0,
                  device: str = "cpu") -> Trainer:
    """A quiet Trainer with the default settings (Adam, lr 1e-3, batch 64) for `strategy`'s model."""
    return Trainer(problem, strategy, TrainConfig(backbone=backbone), seed=seed, quiet=True, device=device)


def without_hooks(trainer: Trainer) -> Trainer:
    """The same trainer stepping its model with no strategy hooks (hard sharing has none): a plain step."""
    trainer.strategy = get_strategy("hard_sharing")(trainer.problem, {}, trainer.seed)
    return trainer


# operator kinds a profile is summed by (first match of the operator's name wins)
KINDS = (("convolution", ("conv",)), ("batch norm", ("batch_norm",)), ("matmul / einsum", ("mm", "einsum", "matmul")),
         ("pooling", ("pool",)))


def kind_of(name: str) -> str:
    return next((kind for kind, keys in KINDS if any(k in name for k in keys)), "other")


def profile_step(step: Callable[[], object], steps: int = 3) -> dict:
    """Self CPU milliseconds per step of every operator under torch.profiler (after one warm-up step), with the
    totals by kind: where a step's time goes."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages() if e.self_cpu_time_total > 0}
    kinds: dict[str, float] = {}
    for name, ms in ops.items():
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + ms
    return {"ops": ops, "kinds": kinds, "total": sum(ops.values())}


def profile_markdown(candidate: dict, baseline: dict, scale: float, names: tuple[str, str], top: int = 10) -> str:
    """Markdown: per kind, the candidate's ms against `scale` x the baseline's (what the bar allows per kind),
    then the candidate's `top` operators."""
    rows = ["| kind | " + f"{names[0]} ms/step | {scale:.3g} x {names[1]} ms/step | ratio |", "|---|---|---|---|"]
    for kind in [*(k for k, _ in KINDS), "other"]:
        c, b = candidate["kinds"].get(kind, 0.0), baseline["kinds"].get(kind, 0.0) * scale
        rows.append(f"| {kind} | {c:,.1f} | {b:,.1f} | {c / b:.2f} |" if b else f"| {kind} | {c:,.1f} | {b:,.1f} | — |")
    c, b = candidate["total"], baseline["total"] * scale
    rows.append(f"| **total** | {c:,.1f} | {b:,.1f} | {c / b:.2f} |")
    ops = sorted(candidate["ops"].items(), key=lambda kv: -kv[1])[:top]
    rows += ["", f"| {names[0]}'s top operators | ms/step | share of its step |", "|---|---|---|"]
    rows += [f"| `{name}` | {ms:,.1f} | {ms / candidate['total']:.0%} |" for name, ms in ops]
    return "\n".join(rows)
