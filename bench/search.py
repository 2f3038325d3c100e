"""Search performance ratios, measured in one run and printed (targets from the search issue).

    python bench/search.py [--trials N] [--epochs N] [--quick] [--device D]

1. Parallel trials: trials per minute with 2 concurrent trials (1 CPU each) / one trial at a time.   target >= 1.6
2. Ray's overhead per trial: wall time per trial when run one at a time under Ray, minus the same
   config's training time with the plain Trainer (worker start, a report every epoch, a checkpoint at the last
   epoch and at most every 30 s before it, the export of the best trial).                            target <= 2 s
   Split by Ray's own per-trial clock (result.json time_total_s): inside the trials (building the trainer,
   reports and checkpoints) and outside them (worker start, scheduling, the driver, the best trials'
   export at the end).
Both searches run the same fixed hard-sharing config on digits, so only the scheduling differs. With
--device cuda each trial asks Ray for half a GPU (two trials share one).
"""
from __future__ import annotations

import functools
import json
import sys
import tempfile
from pathlib import Path

import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Ratio, bench_arguments, seconds
from mtlsearch.search import SearchConfig, search
from mtlsearch.search.trial import make_trainer

FIXED = {"strategy": "hard_sharing", "lr": 3e-3, "batch_size": 64}
OVERHEAD = "Ray's overhead per trial, seconds"


def timed_search(out: Path, name: str, trials: int, epochs: int, concurrency: int, gpus: float) -> float:
    config = SearchConfig(space="baselines", trials=trials, name=name, out=str(out), concurrency=concurrency,
                          fixed={**FIXED, "epochs": epochs}, gpus_per_trial=gpus)
    return seconds(lambda: search(config, quiet=True))


def trial_seconds(out: Path, name: str) -> float:
    """Sum over a search's trials of Ray's clock of each (time_total_s of its last result)."""
    total = 0.0
    for results in (out / name / "ray").glob("*/result.json"):
        lines = results.read_text().splitlines()
        total += json.loads(lines[-1])["time_total_s"] if lines else 0.0
    return total


def plain_training(epochs: int, device: str) -> float:
    torch.set_num_threads(1)
    trainer = make_trainer({**FIXED, "epochs": epochs}, "digits", seed=0, device=device)
    return seconds(trainer.fit)


WORKER_START = ("import ray.tune, torch; import mtlsearch.search.trial; "
                "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())")  # what a fresh trial worker runs first


@functools.lru_cache(maxsize=None)  # both search measures are explained by the same measurement
def fixed_costs(trials: int = 6, epochs: int = 8) -> str:
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
            f"{export:.2f} s. Over the bench's {trials} trials of {epochs} epochs: "
            f"{(start + export) / trials:.2f} s per trial one at a time, {(2 * start + export) / trials:.2f} s with "
            "two workers, where the parallel search also starts its second worker while the first trains. "
            "These are per search, not per trial: a search of more or longer trials spreads them thinner.")


def ratios(quick: bool = False, device: str = "cpu", trials: int | None = None, epochs: int | None = None
           ) -> list[Ratio]:
    trials, epochs = trials or (2 if quick else 6), epochs or (1 if quick else 8)
    gpus = 0.5 if device.startswith("cuda") else 0.0
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            sequential = timed_search(out, "sequential", trials, epochs, 1, gpus)
            inside = trial_seconds(out, "sequential") / trials
            parallel = timed_search(out, "parallel", trials, epochs, 2, gpus)
    finally:
        if started:
            ray.shutdown()
    plain = plain_training(epochs, device)
    per_trial = sequential / trials
    print(f"trials/min  one at a time {60 * trials / sequential:.2f}, two at a time {60 * trials / parallel:.2f}"
          f"  ratio {sequential / parallel:.2f}  (target >= 1.6)")
    print(f"per trial   under Ray {per_trial:.2f}s, plain training {plain:.2f}s  overhead {per_trial - plain:.2f}s"
          f"  (target <= 2 s; includes result export once per search spread over the trials)")
    print(f"            of which inside the trial {inside - plain:.2f}s (Ray's clock {inside:.2f}s minus plain "
          f"training), outside it {per_trial - inside:.2f}s (worker start, scheduling, driver, export)")
    explain = explanations(trials=trials, epochs=epochs)
    throughput = throughput_measure(trials, epochs)
    return [Ratio("search", throughput, sequential / parallel, 1.6, at_most=False, explain=explain[throughput]),
            Ratio("search", OVERHEAD, per_trial - plain, 2.0, explain=explain[OVERHEAD],
                  note=f"{per_trial:.2f} s per trial under Ray, {plain:.2f} s plain training; inside the trial "
                       f"{inside - plain:.2f} s, outside {per_trial - inside:.2f} s")]


def explanations(device: str = "cpu", trials: int = 6, epochs: int = 8) -> dict[str, object]:
    """Both search measures' explanation (the once-per-search costs), by their names in BENCH.md."""
    return {throughput_measure(trials, epochs): lambda: fixed_costs(trials, epochs),
            OVERHEAD: lambda: fixed_costs(trials, epochs)}


def throughput_measure(trials: int, epochs: int) -> str:
    """The throughput measure's name in BENCH.md."""
    return f"trials per minute, 2 at a time / 1 at a time ({trials} digits trials of {epochs} epochs)"


def main(argv=None) -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="trials per search (default 6, quick 2)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 8, quick 1)")
    args = parser.parse_args(argv)
    ratios(args.quick, args.device, args.trials, args.epochs)


if __name__ == "__main__":
    main()
