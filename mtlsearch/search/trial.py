"""One search trial, the same under Ray Tune and plain Optuna: a sampled config in, a trainer that reports per epoch."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from ..errors import UserError
from ..problems import Problem, load_problem
from ..run import RunWriter
from ..settings import split_settings
from ..strategies import get_strategy
from ..training import Trainer
from .spaces import split_sampled

_PROBLEMS: dict[tuple, Problem] = {}


def cached_problem(dataset: str | Problem, data_root: str | None = None) -> Problem:
    """Load a problem once per process (Ray reuses worker processes across trials); a Problem is used as given."""
    if isinstance(dataset, Problem):
        return dataset
    key = (dataset, data_root)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = load_problem(dataset, data_root=data_root)
    return _PROBLEMS[key]


def make_trainer(sampled: dict, dataset: str | Problem, seed: int, data_root: str | None = None,
                 device=None) -> Trainer:
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


def export_best(trainer_state: dict, sampled: dict, writer: RunWriter, problem: Problem | None = None) -> dict:
    """Rebuild a finished trial from its saved state at its best epoch and write it as a run; returns its metrics.

    `problem` is the Problem object the trial trained on, when it was given as one rather than by name."""
    trainer = make_trainer(sampled, problem or writer.dataset, writer.seed, writer.data_root)
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
    """A saved trainer state, loaded without running pickled code; a file that is not one is a UserError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. an unusual pickle protocol, before the refusal
            return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:  # PyTorch's message advises loading it unsafely: name what it refused
        detail = str(err).partition("WeightsUnpickler error:")[2].strip().split("\n")[0]
        detail = detail.split(" was not an allowed global")[0] or "not tensors and plain values"
        raise UserError(f"checkpoint {path} holds what a safe (weights-only) load refuses ({detail}), so it is not "
                        f"loaded: unpickling it could run code; valid: a trainer state saved by mtlsearch") from None
    except (RuntimeError, EOFError, OSError) as err:
        reason = getattr(err, "strerror", None) or (str(err) or type(err).__name__).split(". ")[0].splitlines()[0]
        raise UserError(f"checkpoint {path} cannot be read ({reason}); valid: a trainer state saved by mtlsearch") \
            from None
