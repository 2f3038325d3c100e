"""Search performance ratios, measured in one run and printed (targets from the search issue).

    python bench/search.py [--trials N] [--epochs N] [--quick] [--device D]

A search's wall time splits into what it pays once (its trial workers' start before the first trial ends, the best
trial's export after the last) and the steady state between: the seconds per trial from the c-th trial's end to the
last one's (c trials at a time), taken from Tune's trial-complete callbacks.
1. Parallel trials: trials per minute with 2 concurrent trials (1 CPU each) / one trial at a time, in the steady
   state (one at a time: the mean of a search before and one after two at a time).             target >= 1.6
2. Ray's overhead per trial: a trial's steady-state seconds one at a time under Ray minus a plain script's for the
   same config (build the trainer, train): a report every epoch, a checkpoint at the last epoch and at most every
   30 s before it, scheduling. Split by Ray's own per-trial clock (result.json time_total_s): inside the trials
   and outside them.                                                                               target <= 2 s
3. What a search pays once: its wall time minus its trials at the steady-state rate (reported, no bar; its parts
   are profiled below the table when a bar is missed).
Both searches run the same fixed hard-sharing config on digits, so only the scheduling differs. With
--device cuda each trial asks Ray for half a GPU (two trials share one).
"""
from __future__ import annotations

import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Ratio, bench_arguments, seconds
from mtlsearch.search import SearchConfig, search
from mtlsearch.search.trial import make_trainer

FIXED = {"strategy": "hard_sharing", "lr": 3e-3, "batch_size": 64}
OVERHEAD = "Ray's overhead per trial, seconds"
ONCE = "a search's costs paid once (worker start, the best trial's export), seconds"


class Completions(tune.Callback):
    """When each trial ended (monotonic seconds), as the driver saw it."""

    def __init__(self):
        self.times: list[float] = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.times.append(time.monotonic())


def timed_search(out: Path, name: str, trials: int, epochs: int, concurrency: int, gpus: float
                 ) -> tuple[float, float]:
    """(the search's wall seconds, its steady-state seconds per trial)."""
    config = SearchConfig(space="baselines", trials=trials, name=name, out=str(out), concurrency=concurrency,
                          fixed={**FIXED, "epochs": epochs}, gpus_per_trial=gpus)
    ended = Completions()
    wall = seconds(lambda: search(config, quiet=True, callbacks=[ended]))
    times = sorted(ended.times)
    first = min(concurrency, len(times)) - 1  # the first trials to end ran beside the workers' start
    steady = (times[-1] - times[first]) / (len(times) - 1 - first) if len(times) - 1 > first else wall / trials
    return wall, steady


def trial_seconds(out: Path, name: str) -> float:
    """Sum over a search's trials of Ray's clock of each (time_total_s of its last result)."""
    total = 0.0
    for results in (out / name / "ray").glob("*/result.json"):
        lines = results.read_text().splitlines()
        total += json.loads(lines[-1])["time_total_s"] if lines else 0.0
    return total


def plain_trial(epochs: int, device: str, repeats: int = 3) -> float:
    """Seconds a plain script takes for one trial's work, the median of `repeats`: build its trainer (data, model)
    and train."""
    torch.set_num_threads(1)
    make_trainer({**FIXED, "epochs": 1}, "digits", seed=0, device=device).fit()  # imports and first-call costs
    return statistics.median(seconds(lambda: make_trainer({**FIXED, "epochs": epochs}, "digits", seed=0,
                                                          device=device).fit()) for _ in range(repeats))


WORKER_START = ("import ray.tune, torch; import mtlsearch.search.trial; "
                "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())")  # what a fresh trial worker runs first


@functools.lru_cache(maxsize=None)  # both search measures are explained by the same measurement
def fixed_costs(trials: int = 12, epochs: int = 8) -> str:
    """Where the per-trial overhead goes: the costs a search pays once (a fresh trial worker's start, the export of
    its best trial), measured now, and what they come to per trial at the bench's size."""
    import subprocess

    from mtlsearch.run import RunWriter
    from mtlsearch.search.trial import export_best

    def fresh(code: str) -> float:
        return seconds(lambda: subprocess.run([sys.executable, "-c", code], check=True))

    python = fresh("pass")
    start = fresh(WORKER_START) - python
    without_optimizer = fresh(WORKER_START.rsplit(";", 1)[0]) - python
    trainer = make_trainer({**FIXED, "epochs": 1}, "digits", seed=0)
    trainer.fit()
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(Path(tmp) / "best", "digits", "hard_sharing", 0)
        export = seconds(lambda: export_best(trainer.state_dict(), {**FIXED, "epochs": 1}, writer))
    return (f"Costs a search pays once, measured now: a trial worker's start {start:.2f} s beyond a bare Python "
            f"start (imports of Ray Tune, torch and mtlsearch {without_optimizer:.2f} s; the rest is the first torch "
            f"optimizer, which imports torch._dynamo), paid by each of the search's concurrent workers; the export of "
            f"the best trial (rebuild, test evaluation, torch.export trace and save, structure and pictures) "
            f"{export:.2f} s. Spread over a search of {trials} trials of {epochs} epochs they would be "
            f"{(start + export) / trials:.2f} s per trial one at a time, {(2 * start + export) / trials:.2f} s with "
            "two workers; the bench's per-trial measures leave them out (the steady state between trials' ends).")


def ratios(quick: bool = False, device: str = "cpu", trials: int | None = None, epochs: int | None = None
           ) -> list[Ratio]:
    trials, epochs = trials or (3 if quick else 12), epochs or (1 if quick else 8)
    gpus = 0.5 if device.startswith("cuda") else 0.0
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            timed_search(out, "warm-up", 1, 1, 1, gpus)  # the driver's first search imports what exports need
            # one at a time before and after two at a time: a machine that speeds up or slows down during the
            # bench moves both sides of the ratio alike (a run's one-at-a-time rate had drifted by 17%)
            sequential, before = timed_search(out, "sequential", trials, epochs, 1, gpus)
            parallel, two = timed_search(out, "parallel", trials, epochs, 2, gpus)
            _, after = timed_search(out, "sequential-again", trials, epochs, 1, gpus)
            one = (before + after) / 2
            inside = trial_seconds(out, "sequential") / trials
    finally:
        if started:
            ray.shutdown()
    plain = plain_trial(epochs, device)
    once = sequential - trials * before  # the first search's own steady state
    print(f"search of {trials} trials, one at a time: {sequential:.1f} s, {one:.2f} s per trial in the steady state "
          f"({before:.2f} before two at a time, {after:.2f} after), {once:.1f} s once; two at a time: "
          f"{parallel:.1f} s, {two:.2f} s per trial")
    print(f"trials/min  one at a time {60 / one:.2f}, two at a time {60 / two:.2f}  ratio {one / two:.2f}  "
          "(target >= 1.6)")
    print(f"per trial   under Ray {one:.2f}s, plain (build the trainer, train) {plain:.2f}s  overhead "
          f"{one - plain:.2f}s (target <= 2 s), of which inside the trial {inside - plain:.2f}s (Ray's clock "
          f"{inside:.2f}s minus plain)")
    explain = explanations(trials=trials, epochs=epochs)
    throughput = throughput_measure(trials, epochs)
    return [Ratio("search", throughput, one / two, 1.6, at_most=False, explain=explain[throughput],
                  note=f"{60 / one:.2f} and {60 / two:.2f} trials per minute (one at a time: {60 / before:.2f} before "
                       f"two at a time, {60 / after:.2f} after); whole searches {sequential:.1f} s and "
                       f"{parallel:.1f} s, ratio {sequential / parallel:.2f}"),
            Ratio("search", OVERHEAD, one - plain, 2.0, explain=explain[OVERHEAD],
                  note=f"{one:.2f} s per trial under Ray, {plain:.2f} s plain; inside the trial "
                       f"{inside - plain:.2f} s"),
            Ratio("search", ONCE, once, None,
                  note=f"one at a time: {sequential:.1f} s for {trials} trials = {once:.1f} s + {trials} x "
                       f"{before:.2f} s")]


def explanations(device: str = "cpu", trials: int = 12, epochs: int = 8) -> dict[str, object]:
    """Both search measures' explanation (the once-per-search costs), by their names in BENCH.md."""
    return {throughput_measure(trials, epochs): lambda: fixed_costs(trials, epochs),
            OVERHEAD: lambda: fixed_costs(trials, epochs)}


def throughput_measure(trials: int, epochs: int) -> str:
    """The throughput measure's name in BENCH.md."""
    return f"trials per minute, 2 at a time / 1 at a time (steady state of {trials} digits trials of {epochs} epochs)"


def main(argv=None) -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="trials per search (default 12, quick 3)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 8, quick 1)")
    args = parser.parse_args(argv)
    ratios(args.quick, args.device, args.trials, args.epochs)


if __name__ == "__main__":
    main()
