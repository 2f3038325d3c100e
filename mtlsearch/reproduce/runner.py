"""Parallel execution: independent runs on `workers` single-threaded processes, with one progress bar.

Cost measurements go first, each in a fresh process (so its peak memory is its own), one chain per method
in ascending task count: a count is skipped when the smaller ones predict it would break the budget.
Training runs fill the free slots on a pool of reused processes, longest first so the cores finish together.
A run that fails is recorded with its error and the rest go on.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable

import torch
from tqdm.auto import tqdm

from .measure import Cost, Run, measure_cost, over_budget, train

# CPU seconds per epoch on one thread, measured on this project's 2-core machine (one epoch of each strategy with
# its reproduction settings), and other data sets' epochs relative to mnist-5k's: used only to order the runs
# (longest first) and to print the expected duration, never in any result.
EPOCH_SECONDS = {
    "mnist-5k": {"single_task": 22.0, "hard_sharing": 3.6, "cross_stitch": 24.0, "task_routing": 3.2, "sfg": 27.0,
                 "selective_sharing": 4.0, "task_affinity": 9.0},
    "multimnist:pairs=4000": {"single_task": 16.6, "hard_sharing": 3.1, "cross_stitch": 17.9, "task_routing": 3.1,
                              "sfg": 17.3, "selective_sharing": 4.1,
                              "task_affinity": 8.0},
}
DATASET_FACTOR = {"multimnist:pairs=300": 0.08, "digits": 0.15, "synthetic": 0.1}


def single_thread() -> None:
    """Each worker uses one intra-op thread: the processes, not the threads, share the cores."""
    torch.set_num_threads(1)


def estimate_seconds(run: Run) -> float:
    dataset = "synthetic" if run.dataset.startswith("synthetic") else run.dataset
    per_epoch = EPOCH_SECONDS.get(dataset) or {s: DATASET_FACTOR.get(dataset, 1.0) * t
                                               for s, t in EPOCH_SECONDS["mnist-5k"].items()}
    slower = 1.6 if dict(run.config).get("inference") == "mc" else 1.0  # Monte Carlo evaluation (measured 1.56x)
    return run.epochs * per_epoch.get(run.strategy, 10.0) * slower + 1.0


def _call(fn: Callable, job):
    """Run `fn(job)` in the worker; an exception becomes an error record instead of stopping everything."""
    try:
        return fn(job)
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=5)}


def _context():
    """A fork server that has imported the worker code once: fresh processes start in milliseconds, and none
    is a fork of this process's threads or torch state (spawn where there is no fork server)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mtlsearch.reproduce.measure"])
    return context


class RunProgress:
    """One bar over every run; quiet when stderr is not a terminal."""

    def __init__(self, total: int, quiet: bool):
        self.bar = tqdm(total=total, desc="reproduce", unit="run", disable=quiet or not sys.stderr.isatty())

    def done(self, label: str) -> None:
        self.bar.set_postfix_str(label[:40])
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


class Chains:
    """Cost measurements, one chain per method in ascending task count: a chain's next count starts only
    when the previous one is done, and is skipped when the smaller counts predict it would break the budget."""

    def __init__(self, chains: list[list[Cost]], budget_bytes: float, progress: RunProgress):
        self.chains, self.budget_bytes, self.progress = chains, budget_bytes, progress
        self.position = [0] * len(chains)
        self.done: list[list[tuple[Cost, dict]]] = [[] for _ in chains]
        self.busy = [False] * len(chains)
        self.results: dict[Cost, dict] = {}

    def next_job(self) -> tuple[int, Cost] | None:
        """The next measurement of an idle chain (recording skipped counts on the way), or None."""
        for c, chain in enumerate(self.chains):
            while not self.busy[c] and self.position[c] < len(chain):
                job = chain[self.position[c]]
                self.position[c] += 1
                reason = over_budget(self.done[c], job, self.budget_bytes)
                if reason is None:
                    self.busy[c] = True
                    return c, job
                self.finish(c, job, {"skipped": reason})
        return None

    def finish(self, c: int, job: Cost, result: dict) -> None:
        self.busy[c] = False
        self.results[job] = result
        self.done[c].append((job, result))
        self.progress.done(f"{job.method} {job.n_tasks} tasks")


def run_all(runs: list[Run], chains: Chains, workers: int, progress: RunProgress) -> dict:
    """Keep `workers` processes busy: cost measurements first (each in a fresh process, so its peak memory is
    its own), training runs in the free slots, longest expected first."""
    trained: dict[Run, dict] = {}
    queue = sorted(runs, key=estimate_seconds, reverse=True)
    context = _context()
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(chains.chains))), mp_context=context,
                             initializer=single_thread, max_tasks_per_child=1) as fresh, \
            ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=single_thread) as pool:
        running: dict[Future, tuple] = {}
        try:
            while True:
                while len(running) < workers:
                    nxt = chains.next_job()
                    if nxt is not None:
                        running[fresh.submit(_call, measure_cost, nxt[1])] = ("cost", *nxt)
                    elif queue:
                        job = queue.pop(0)
                        running[pool.submit(_call, train, job)] = ("run", job)
                    else:
                        break
                if not running:
                    return trained
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    kind, *what = running.pop(future)
                    if kind == "cost":
                        chains.finish(what[0], what[1], future.result())
                    else:
                        trained[what[0]] = future.result()
                        progress.done(f"{what[0].strategy} {what[0].dataset} s{what[0].seed}")
        except KeyboardInterrupt:
            for executor in (fresh, pool):
                executor.shutdown(wait=False, cancel_futures=True)
            raise


def execute(runs: list[Run], chains: list[list[Cost]], workers: int, budget_bytes: float,
            quiet: bool = False, done: dict | None = None, done_costs: dict | None = None) -> tuple[dict, dict, float]:
    """(training results by Run, cost results by Cost, wall seconds); duplicate runs are trained once, runs in
    `done` and chains whose every measurement is in `done_costs` not at all (their results are the caller's)."""
    runs = [r for r in dict.fromkeys(runs) if r not in (done or {})]
    chains = [chain for chain in chains if not all(c in (done_costs or {}) for c in chain)]
    started = time.perf_counter()
    progress = RunProgress(len(runs) + sum(len(c) for c in chains), quiet)
    try:
        scheduled = Chains(chains, budget_bytes, progress)
        trained = run_all(runs, scheduled, workers, progress)
    finally:
        progress.close()
    return trained, scheduled.results, time.perf_counter() - started
