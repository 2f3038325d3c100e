"""A training run from names to files: validate everything first, then train, evaluate and export.

`RunWriter` writes every finished run the same way, whether it was trained, retrained or picked from a search.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError
from .problems import load_problem
from .settings import split_settings
from .strategies import get_strategy
from .structure.export import export_structure
from .training import Trainer, evaluate


def prepare_out_dir(out: str | Path, overwrite: bool) -> Path:
    """Create `out`; an existing non-empty directory is refused unless `overwrite` (then replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"`out` {out} is a file; give a directory", ("out",))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"`out` {out} exists and is not empty; pass `overwrite` to replace it or choose another "
                            "`out`", ("out", "overwrite"))
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def train_run(dataset: str, strategy: str, out: str | Path, *, epochs: int | None = None, seed: int = 0,
              settings: dict | None = None, overwrite: bool = False, quiet: bool = False,
              data_root: str | None = None, download: bool = False, device: str | None = None) -> dict:
    """Train one strategy on one problem and write config.json, metrics.json, checkpoint.pt and the structure."""
    settings = dict(settings or {})
    if epochs is not None:
        settings["epochs"] = epochs
    cls = get_strategy(strategy)
    train_config, strategy_config = split_settings(settings, cls)
    problem = load_problem(dataset, data_root=data_root, download=download)
    trainer = Trainer(problem, cls(problem, strategy_config, seed), train_config, seed=seed, quiet=quiet,
                      device=device)
    out = prepare_out_dir(out, overwrite)  # settings that do not fit the backbone fail before `out` is touched
    return RunWriter(out, dataset, strategy, seed, data_root).fit_and_write(trainer)


def tested(trainer: Trainer) -> dict:
    """What a fitted trainer's best model scored: parameters, best epoch, validation and test metrics (the test
    set is evaluated here, once), the strategy's report and the per-epoch history."""
    best = trainer.best
    test = evaluate(trainer.model, trainer.problem, "test", device=trainer.device)
    return {"params": trainer.params(), "best_epoch": best["epoch"], "val": best["val"], "test": test,
            "report": trainer.strategy.report(), "history": trainer.history}


@dataclass
class RunWriter:
    """The files of a finished run, one layout for train, retrain and a search's best trials: config.json (what
    ran), metrics.json (how it scored), checkpoint.pt and the exported structure with the strategy's pictures."""

    out: Path
    dataset: str
    strategy: str
    seed: int
    data_root: str | None = None
    origin: dict = field(default_factory=dict)  # where the run came from: {"retrain": {...}} or {"trial": id}
    strategy_config: dict | None = None  # default: the trainer's strategy's config

    def fit_and_write(self, trainer: Trainer) -> dict:
        """config.json first (a run that stops still says what it was), then fit with one line per epoch in
        metrics.jsonl, then the results; returns the metrics."""
        trainer.out_dir = self.out
        self.write_config(trainer)
        started = time.perf_counter()
        trainer.fit()
        return self.write_results(trainer, time.perf_counter() - started)

    def write_config(self, trainer: Trainer) -> None:
        """config.json: the dataset, strategy, seed, trainer and strategy settings, data root and origin."""
        strategy_config = trainer.strategy.config if self.strategy_config is None else self.strategy_config
        write_json(self.out / "config.json", {"dataset": self.dataset, "strategy": self.strategy, "seed": self.seed,
                                              "train": trainer.config.__dict__, "strategy_config": strategy_config,
                                              "data_root": self.data_root, **self.origin})

    def write_results(self, trainer: Trainer, train_seconds: float | None = None) -> dict:
        """Test the best model; write metrics.json, checkpoint.pt and the exported structure; return the metrics.

        `train_seconds` is the wall time of fitting (left out when the run was not fitted here).
        """
        result = tested(trainer)
        seconds = {} if train_seconds is None else {"train_seconds": round(train_seconds, 3)}
        metrics = {"strategy": self.strategy, "dataset": self.dataset, "seed": self.seed, **self.origin,
                   "params": result["params"], "best_epoch": result["best_epoch"], **seconds, "val": result["val"],
                   "test": result["test"], **result["report"], "history": result["history"]}
        write_json(self.out / "metrics.json", metrics)
        torch.save({"weights": trainer.model.state_dict(), "architecture": trainer.best["state"],
                    "epoch": trainer.best["epoch"]}, self.out / "checkpoint.pt")
        structure, weights = trainer.strategy.structure(trainer.model)
        structure.set_metrics({"val_score": result["val"]["score"], "test_score": result["test"]["score"],
                               "params": result["params"]})
        export_structure(self.out, structure, weights)
        trainer.strategy.artifacts(trainer.model, self.out)
        return metrics
