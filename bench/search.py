"""Search performance ratios, measured in one run and printed (targets from the search issue).

    python bench/search.py [--trials N] [--epochs N]

1. Parallel trials: trials per minute with 2 concurrent trials (1 CPU each) / one trial at a time.   target >= 1.6
2. Ray's overhead per trial: wall time per trial when run one at a time under Ray, minus the same
   config's training time with the plain Trainer (start, report, checkpoint every epoch).            target <= 2 s
Both searches run the same fixed hard-sharing config on digits, so only the scheduling differs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import seconds
from mtlsearch.search import SearchConfig, search
from mtlsearch.search.trial import make_trainer

FIXED = {"strategy": "hard_sharing", "lr": 3e-3, "batch_size": 64}


def timed_search(out: Path, name: str, trials: int, epochs: int, concurrency: int) -> float:
    config = SearchConfig(space="baselines", trials=trials, name=name, out=str(out), concurrency=concurrency,
                          fixed={**FIXED, "epochs": epochs})
    return seconds(lambda: search(config, quiet=True))


def plain_training(epochs: int) -> float:
    torch.set_num_threads(1)
    trainer = make_trainer({**FIXED, "epochs": epochs}, "digits", seed=0)
    return seconds(trainer.fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        sequential = timed_search(out, "sequential", args.trials, args.epochs, concurrency=1)
        parallel = timed_search(out, "parallel", args.trials, args.epochs, concurrency=2)
    plain = plain_training(args.epochs)
    per_trial = sequential / args.trials
    print(f"trials/min  one at a time {60 * args.trials / sequential:.2f}, "
          f"two at a time {60 * args.trials / parallel:.2f}"
          f"  ratio {sequential / parallel:.2f}  (target >= 1.6)")
    print(f"per trial   under Ray {per_trial:.2f}s, plain training {plain:.2f}s  overhead {per_trial - plain:.2f}s"
          f"  (target <= 2 s; includes result export once per search spread over the trials)")


if __name__ == "__main__":
    main()
