"""One search trial, the same under Ray Tune and plain Optuna: a sampled config in, a trainer that reports per epoch."""
from __future__ import annotations

from pathlib import Path

import torch

from ..problems import Problem, load_problem
from ..run import RunWriter
from ..settings import split_settings
from ..strategies import get_strategy
from ..training import Trainer
from .spaces import split_sampled

_PROBLEMS: dict[tuple, Problem] = {}


def cached_problem(dataset: str, data_root: str | None = None) -> Problem:
    """Load a problem once per process (Ray reuses worker processes across trials)."""
    key = (dataset, data_root)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = load_problem(dataset, data_root=data_root)
    return _PROBLEMS[key]


def make_trainer(sampled: dict, dataset: str, seed: int, data_root: str | None = None, device=None) -> Trainer:
    """A quiet Trainer for what a space sampled (a strategy and its settings)."""
    name, settings = split_sampled(sampled)
    cls = get_strategy(name)
    train_config, strategy_config = split_settings(settings, cls)
    problem = cached_problem(dataset, data_root)
    return Trainer(problem, cls(problem, strategy_config, seed), train_config, seed=seed, quiet=True, device=device)


def epoch_report(record: dict, epochs: int) -> dict:
    """What a trial reports after each epoch."""
    return {"val_score": record["val_score"], "params": record["params"], "epoch": record["epoch"],
            "epochs": epochs, "epoch_seconds": record["seconds"]}


def export_best(trainer_state: dict, sampled: dict, writer: RunWriter) -> dict:
    """Rebuild a finished trial from its saved state at its best epoch and write it as a run; returns its metrics."""
    trainer = make_trainer(sampled, writer.dataset, writer.seed, writer.data_root)
    trainer.load_state_dict(trainer_state)
    best = trainer.best
    if best["state"] is not None:
        trainer.model = trainer.strategy.build(trainer.backbone, best["state"]).to(trainer.device)
    trainer.model.load_state_dict(best["weights"])
    writer.out.mkdir(parents=True, exist_ok=True)
    writer.write_config(trainer)
    return writer.write_results(trainer)


def save_state(trainer: Trainer, path: Path) -> None:
    torch.save(trainer.state_dict(), path)


def load_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)
