"""One search trial, the same under Ray Tune and plain Optuna: a config in, a trainer that reports per epoch."""
from __future__ import annotations

from pathlib import Path

import torch

from ..problems import Problem, load_problem
from ..settings import split_settings
from ..strategies import get_strategy
from ..structure.export import export_structure
from ..training import Trainer, evaluate
from .spaces import run_config

_PROBLEMS: dict[tuple, Problem] = {}


def cached_problem(dataset: str, data_root: str | None = None) -> Problem:
    """Load a problem once per process (Ray reuses worker processes across trials)."""
    key = (dataset, data_root)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = load_problem(dataset, data_root=data_root)
    return _PROBLEMS[key]


def make_trainer(config: dict, dataset: str, seed: int, data_root: str | None = None, device=None) -> Trainer:
    """A quiet Trainer for a sampled run config."""
    name, settings = run_config(config)
    cls = get_strategy(name)
    train_config, strategy_config = split_settings(settings, cls)
    problem = cached_problem(dataset, data_root)
    return Trainer(problem, cls(problem, strategy_config, seed), train_config, seed=seed, quiet=True, device=device)


def epoch_report(record: dict, epochs: int) -> dict:
    """What a trial reports after each epoch."""
    return {"val_score": record["val_score"], "params": record["params"], "epoch": record["epoch"],
            "epochs": epochs, "epoch_seconds": record["seconds"]}


def export_best(trainer_state: dict, config: dict, dataset: str, seed: int, out: Path,
                data_root: str | None = None) -> dict:
    """Rebuild a finished trial from its checkpoint and write its structure, frozen model and metrics to `out`."""
    trainer = make_trainer(config, dataset, seed, data_root)
    trainer.load_state_dict(trainer_state)
    best = trainer.best
    if best["state"] is not None:
        trainer.model = trainer.strategy.build(trainer.backbone, best["state"]).to(trainer.device)
    trainer.model.load_state_dict(best["weights"])
    test = evaluate(trainer.model, trainer.problem, "test", device=trainer.device)
    out.mkdir(parents=True, exist_ok=True)
    structure, weights = trainer.strategy.structure(trainer.model)
    structure.set_metrics({"val_score": best["val"]["score"], "test_score": test["score"], "params": trainer.params()})
    export_structure(out, structure, weights)
    trainer.strategy.artifacts(trainer.model, out)
    metrics = {"strategy": config["strategy"], "dataset": dataset, "seed": seed, "params": trainer.params(),
               "best_epoch": best["epoch"], "val": best["val"], "test": test, "config": config,
               **trainer.strategy.report(), "history": trainer.history}
    return metrics


def save_state(trainer: Trainer, path: Path) -> None:
    torch.save(trainer.state_dict(), path)


def load_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)
