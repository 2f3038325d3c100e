"""What runs inside a worker process: one training run, or one cost measurement of a many-task model.

Both go through the package's public interfaces only (get_strategy, Trainer, evaluate, strategy.report), so
the numbers are those a user gets from `mtlsearch train`.
"""
from __future__ import annotations

import json
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..problems import Problem, Task, load_problem
from ..problems.data import tensor_dataset
from ..run import tested
from ..strategies import get_strategy
from ..structure.views import deepest_grouping, layer_kinds, task_affinity
from ..training import TrainConfig, Trainer, TrainingDiverged

HISTORY_KEYS = {"epoch", "train_loss", "val_score", "val_loss", "seconds", "params"}  # the trainer's own keys


@dataclass(frozen=True)
class Run:
    """One training run; equal runs (same dataset, strategy, settings, epochs, seed) are trained once."""

    dataset: str
    strategy: str
    seed: int
    epochs: int
    config: tuple = ()  # sorted (key, value) pairs of strategy settings
    train: tuple = ()  # sorted (key, value) pairs of trainer settings other than epochs (e.g. the optimiser)

    @property
    def settings(self) -> dict:
        return dict(self.config)


def run(dataset: str, strategy: str, seed: int, epochs: int, train: dict | None = None, **config) -> Run:
    return Run(dataset, strategy, int(seed), int(epochs), tuple(sorted(config.items())),
               tuple(sorted((train or {}).items())))


@dataclass(frozen=True)
class Cost:
    """One cost measurement: a method's training step at `n_tasks` random binary tasks on `shape` inputs."""

    method: str
    n_tasks: int
    steps: int
    warmup: int
    batch: int
    budget_seconds: float
    config: tuple = ()
    shape: tuple = (1, 8, 8)  # the input: the compared data sets' shape


def jsonable(value):
    """Strategy reports may hold numpy scalars or tuples: make them plain JSON values."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


@lru_cache(maxsize=None)
def cached_problem(name: str) -> Problem:
    return load_problem(name)


def train(job: Run) -> dict:
    """Train, then test the best-validation model; the strategy's per-epoch logs and report come along."""
    problem = cached_problem(job.dataset)
    strategy = get_strategy(job.strategy)(problem, job.settings, job.seed)
    with warnings.catch_warnings(record=True) as caught:  # kept for the report, not printed by the worker
        warnings.simplefilter("always")
        config = TrainConfig(epochs=job.epochs, **dict(job.train))
        trainer = Trainer(problem, strategy, config, seed=job.seed, quiet=True)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            trainer.fit()
        except TrainingDiverged as err:
            return {"error": f"diverged: {err}"}
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = tested(trainer)
    return jsonable({**sharing_of(strategy, trainer.model),
        "test": result["test"], "params": result["params"], "seconds": wall, "cpu_seconds": cpu,
        "best_epoch": result["best_epoch"], "val_scores": [h["val_score"] for h in result["history"]],
        "logs": [{k: v for k, v in h.items() if k not in HISTORY_KEYS} for h in result["history"]],
        "report": result["report"], "config": strategy.config, "task_types": {t.name: t.type for t in problem.tasks},
        "true_groups": problem.true_groups,
        "warnings": sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})})


def sharing_of(strategy, model: torch.nn.Module) -> dict:
    """What the trained network shares, as its exported structure says: the grouping that stands for it (the
    deepest layer where tasks still share a block) and the T x T share of each task's parameters another task uses."""
    structure, _ = strategy.structure(model)
    layer, groups = deepest_grouping(structure)
    kind = layer_kinds(structure, layer) if layer is not None else ""
    return {"grouping": {"layer": layer, "kind": kind, "groups": groups, "tasks": structure.task_names},
            "parameter_sharing": task_affinity(structure).tolist()}


# cost measurements
def random_binary_problem(n_tasks: int, batch: int, shape=(1, 8, 8)) -> Problem:
    """Random inputs of the given shape with random binary labels: only the cost of a step is measured."""
    rng = np.random.default_rng(0)
    data = tensor_dataset(rng.random((batch, *shape), dtype=np.float32), rng.integers(0, 2, (batch, n_tasks)))
    return Problem(f"random{n_tasks}", [Task(f"attr{i}", "binary") for i in range(n_tasks)], data, data, data,
                   input_shape=tuple(shape))


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss() -> int | None:
    """This process's peak resident memory in bytes (since the last reset_peak_rss), None where unknown."""
    return _status_bytes("VmHWM")


def reset_peak_rss() -> int | None:
    """Reset the kernel's peak-RSS mark to the current RSS and return that baseline; None where Linux's
    /proc/self/clear_refs is unavailable (then peak growth is not reported rather than guessed)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    return 0


def part_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Parameter bytes by top-level module (e.g. a trunk against per-task heads): where the growth comes from."""
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        parts[part] = parts.get(part, 0) + _tensor_bytes(p)
    return parts


class Stepper:
    """Training steps exactly as the Trainer takes them (Trainer.train_step on the whole random batch), noting
    which tasks were trained."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        trainer.model.train()
        self.x, self.y = (t.to(trainer.device) for t in trainer.problem.train.tensors)
        self.trained: set[str] = set()
        self.losses: list[int] = []  # task losses trained per step

    def __call__(self, tasks: list[str] | None = None) -> None:
        stepped = self.trainer.train_step(self.x, self.y, tasks)
        if stepped is not None:
            self.trained.update(stepped[0])
            self.losses.append(len(stepped[0]))


def measure_cost(job: Cost) -> dict:
    """Median CPU time of a step, parameter and Adam-state bytes once every task has been trained, and the
    growth of the process's peak resident memory."""
    problem = random_binary_problem(job.n_tasks, job.batch, job.shape)
    cls = get_strategy(job.method)  # imported before the clock and the memory baseline start
    baseline = reset_peak_rss()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # kept for the report, not printed by the worker
        warnings.simplefilter("always")
        strategy = cls(problem, dict(job.config), 0)
        trainer = Trainer(problem, strategy, TrainConfig(epochs=1, batch_size=job.batch), seed=0, quiet=True)
    build = time.perf_counter() - started
    step = Stepper(trainer)
    for _ in range(job.warmup):
        step()
    step.losses.clear()
    times = []  # CPU seconds of this one-thread process: robust to other processes sharing the machine
    while len(times) < job.steps and (not times or time.perf_counter() - started < job.budget_seconds):
        t0 = time.process_time()
        step()
        times.append(time.process_time() - t0)
    task_updates = statistics.mean(step.losses) if step.losses else float(job.n_tasks)
    for task in problem.task_names:  # Adam keeps state only for what was trained: train every task once
        if task not in step.trained:
            step([task])
    peak = _status_bytes("VmHWM")
    params = sum(p.numel() for p in trainer.model.parameters())
    return {"step_ms": 1e3 * statistics.median(times), "steps_timed": len(times), "build_seconds": build,
            "task_updates": task_updates, "part_bytes": part_bytes(trainer.model), "params": params,
            "param_bytes": sum(_tensor_bytes(p) for p in trainer.model.parameters()),
            "optimizer_bytes": sum(_tensor_bytes(s) for s in trainer.optimizer.state.values()),
            "peak_rss_growth": None if baseline is None or peak is None else max(peak - baseline, 0),
            "seconds": time.perf_counter() - started, "warnings": sorted({str(w.message) for w in caught})}


def extrapolate(counts: list[float], values: list[float], target: float, default: float, low: float = 1.0,
                high: float | None = 3.0) -> float:
    """values[-1] scaled to `target` as a power law of the count, its exponent from the last two measurements
    (clamped to [low, high]; `default` with one measurement)."""
    exponent = default
    if len(counts) >= 2 and counts[-1] != counts[-2]:
        ratio = max(values[-1], 1e-9) / max(values[-2], 1e-9)
        exponent = max(math.log(ratio) / math.log(counts[-1] / counts[-2]), low)
        exponent = exponent if high is None else min(exponent, high)
    return values[-1] * (target / counts[-1]) ** exponent


def over_budget(done: list[tuple[Cost, dict]], job: Cost, budget_bytes: float) -> str | None:
    """Why `job` is not started, judged from the same method's measurements at smaller task counts.

    Time and peak memory are extrapolated with the growth exponent of the last two measurements (clamped to
    [1, 3]; with one measurement: 2 for building the model and for steps, 1.5 for peak memory), so a
    measurement predicted to break the budget is not launched.
    """
    if not done:
        return None
    last, result = done[-1]
    if "skipped" in result or "error" in result:
        return f"not run: the smaller count ({last.n_tasks} tasks) was not measured"
    if result["steps_timed"] < last.steps:
        return f"not run: {last.n_tasks} tasks already exceeded the {last.budget_seconds:.0f} s budget"
    measured = [(c, r) for c, r in done[-2:] if "skipped" not in r and "error" not in r]
    counts = [c.n_tasks for c, _ in measured]

    def grown(key: str, default: float) -> float:
        return extrapolate(counts, [r[key] or 0.0 for _, r in measured], job.n_tasks, default)

    seconds = grown("build_seconds", 2.0) + (job.warmup + job.steps) * grown("step_ms", 2.0) / 1e3
    memory = (2 * result["param_bytes"] + result["optimizer_bytes"]) * job.n_tasks / last.n_tasks  # + gradients
    if result.get("peak_rss_growth"):  # activations and autograd graph too, where measured
        memory = max(memory, grown("peak_rss_growth", 1.5))
    if seconds > job.budget_seconds:
        return f"not run: extrapolated {seconds:,.0f} s > budget {job.budget_seconds:.0f} s"
    if memory > budget_bytes:
        return f"not run: extrapolated {memory / 1e9:.1f} GB > memory cap {budget_bytes / 1e9:.1f} GB"
    return None
