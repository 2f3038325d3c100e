"""The search driver: validate, run the trials on Ray Tune or Optuna, then write leaderboard, front and best structures."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UserError
from ..run import prepare_out_dir, write_json
from ..training import TrainConfig
from .results import best_per_strategy, draw_pareto, optuna_plots, pareto_front, write_leaderboard
from .spaces import SpaceRef, check_space
from .trial import cached_problem, export_best, load_state



class SearchInterrupted(UserError):
    """Ctrl-C stopped the search; its state is saved for `--resume`."""


@dataclass
class SearchConfig:
    """Everything that defines a search; saved as search.json so `--resume` needs only the directory."""

    dataset: str = "digits"
    space: str = "all"
    trials: int = 12
    name: str = "search"
    out: str = "runs"
    backend: str = "ray"
    objectives: list[str] = field(default_factory=lambda: ["score"])
    sampler: str = "tpe"
    scheduler: str | None = None
    seed: int = 0
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int = 2
    storage: str | None = None
    data_root: str | None = None
    fixed: dict = field(default_factory=dict)  # settings that override what the space samples (--set)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name


class Progress:
    """A trial counter with the best score so far; quiet when output is not a terminal."""

    def __init__(self, total: int, quiet: bool):
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=quiet or not sys.stderr.isatty())
        self.best = None

    def done(self, score: float | None, failed: bool = False) -> None:
        if score is not None and (self.best is None or score > self.best):
            self.best = score
        self.bar.update(1)
        self.bar.set_postfix(best=f"{self.best:.4f}" if self.best is not None else "-", refresh=False)
        if failed:
            self.bar.write("a trial failed; the search goes on (see leaderboard.md)", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def search(config: SearchConfig, *, overwrite: bool = False, quiet: bool = False, resume: bool = False,
           callbacks: list | None = None) -> dict:
    """Run (or resume) a search and write its results to `config.run_dir`; returns a summary."""
    space = SpaceRef(config.space, config.fixed)
    problem = cached_problem(config.dataset, config.data_root)
    check_space(space, problem, config.space)
    run_dir = config.run_dir
    if config.backend == "ray":  # join or start Ray before anything is written: a bad --address loses nothing
        from .ray_backend import connect

        connect(config.address, None if config.address else max(1, round(config.concurrency * config.cpus_per_trial)))
    if not resume:
        prepare_out_dir(run_dir, overwrite)
        write_json(run_dir / "search.json", asdict(config))
    started = time.perf_counter()
    if config.backend == "ray":
        from .ray_search import run_ray

        records, study = run_ray(config, space, resume=resume, quiet=quiet, callbacks=callbacks or [])
    else:
        from .optuna_search import run_optuna

        records, study = run_optuna(config, space, quiet=quiet, callbacks=callbacks or [])
    return finish(config, records, study, time.perf_counter() - started)


def finish(config: SearchConfig, records: list[dict], study, seconds: float) -> dict:
    """Leaderboard, Pareto front, Optuna plots, and the best trial of each strategy exported for retraining."""
    run_dir = config.run_dir
    write_leaderboard(records, run_dir)
    draw_pareto(records, run_dir / "pareto.png")
    front = pareto_front(records)
    write_json(run_dir / "pareto.json", [{k: r[k] for k in ("trial", "strategy", "val_score", "params")} for r in front])
    plots = optuna_plots(study, run_dir, config.objectives) if study is not None else []
    best = {}
    for strategy, record in best_per_strategy(records).items():
        out = run_dir / "best" / strategy
        metrics = export_best(load_state(record["state_path"]), record["config"], config.dataset, config.seed, out,
                              config.data_root)
        write_json(out / "metrics.json", metrics)
        train = {f.name: record["config"][f.name] for f in fields(TrainConfig) if f.name in record["config"]}
        write_json(out / "config.json", {"dataset": config.dataset, "strategy": strategy, "seed": config.seed,
                                         "train": train, "run": record["config"], "data_root": config.data_root,
                                         "trial": record["trial"]})
        best[strategy] = {"trial": record["trial"], "val_score": record["val_score"],
                          "test_score": metrics["test"]["score"], "params": record["params"], "dir": str(out)}
    summary = {"trials": len(records), "done": sum(r["status"] == "done" for r in records),
               "failed": sum(r["status"] == "failed" for r in records),
               "stopped": sum(r["status"] in ("stopped", "pruned") for r in records),
               "seconds": round(seconds, 1), "best": best, "pareto": [r["trial"] for r in front], "plots": plots}
    write_json(run_dir / "summary.json", summary)
    return summary


def load_config(run_dir: str | Path) -> SearchConfig:
    path = Path(run_dir) / "search.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a search directory (no search.json); valid: runs/<name> of an earlier search")
    return SearchConfig(**json.loads(path.read_text()))
