"""A training run from names to files: validate everything first, then train, evaluate and export."""
from __future__ import annotations

import json
import shutil
import time
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
        raise UserError(f"--out {out} is a file; give a directory")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} exists and is not empty; pass --overwrite to replace it or choose another --out")
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
    learner = cls(problem, strategy_config, seed)
    trainer = Trainer(problem, learner, train_config, seed=seed, quiet=quiet, device=device)  # settings that
    out = trainer.out_dir = prepare_out_dir(out, overwrite)  # do not fit the backbone fail before --out is touched
    config = {"dataset": dataset, "strategy": strategy, "seed": seed, "train": train_config.__dict__,
              "strategy_config": learner.config, "data_root": data_root}
    write_json(out / "config.json", config)
    return fit_and_write(out, trainer, {"strategy": strategy, "dataset": dataset, "seed": seed})


def fit_and_write(out: Path, trainer: Trainer, header: dict) -> dict:
    """Fit, test the best model, write metrics.json (`header` first), checkpoint.pt and the exported structure."""
    problem, learner = trainer.problem, trainer.strategy
    started = time.perf_counter()
    best = trainer.fit()
    seconds = time.perf_counter() - started
    test = evaluate(trainer.model, problem, "test", device=trainer.device)
    metrics = {**header, "params": trainer.params(),
               "best_epoch": best["epoch"], "train_seconds": round(seconds, 3), "val": best["val"], "test": test,
               **learner.report(), "history": trainer.history}
    write_json(out / "metrics.json", metrics)
    torch.save({"weights": trainer.model.state_dict(), "architecture": best["state"], "epoch": best["epoch"]},
               out / "checkpoint.pt")
    structure, weights = learner.structure(trainer.model)
    structure.set_metrics({"val_score": best["val"]["score"], "test_score": test["score"], "params": metrics["params"]})
    export_structure(out, structure, weights)
    learner.artifacts(trainer.model, out)
    return metrics
