"""One search trial, the same under Ray Tune and plain Optuna: a sampled config in, a trainer that reports per epoch."""
from __future__ import annotations

import pickle
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ..errors import UserError
from ..problems import Problem, load_problem
from ..run import RunWriter, write_json
from ..settings import split_settings
from ..strategies import get_strategy
from ..training import Trainer
from .spaces import split_sampled

# what every epoch reports (`ray.tune.report`): maximise BEST_VAL_SCORE, it is what a trial's export keeps
# (mtlsearch.tune exports these names)
VAL_SCORE = "val_score"  # this epoch's validation score (the mean of the tasks' primary metrics)
BEST_VAL_SCORE = "best_val_score"  # the best validation score so far
PARAMS = "params"  # the model's parameter count now
EPOCH = "epoch"  # epochs done
NODE_ID = "node_id"  # the Ray node that ran the epoch (nodes of one machine share an IP address)
STATE_FILE = "trainer.pt"  # a checkpoint's trainer state (loaded with weights_only=True)
TRIAL_FILE = "trial.json"  # a checkpoint's dataset, seed and settings, so the checkpoint alone can be exported

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
    return {VAL_SCORE: record["val_score"], PARAMS: record["params"], EPOCH: record["epoch"],
            "epochs": epochs, "epoch_seconds": record["seconds"]}


def train_reporting(run: dict, sampled: dict, checkpoint_seconds: float = 0.0, session=None) -> None:
    """Train one trial under Ray Tune, resuming from its checkpoint: a report every epoch (ASHA decides on each),
    a checkpoint at the last epoch and whenever `checkpoint_seconds` have passed since the previous one (0: every
    epoch), so an interrupted trial continues from its latest checkpoint and a finished one can be exported.

    `run` holds mtlsearch.tune's RUN_KEYS (dataset, strategy, seed, data_root, device), `sampled` the settings;
    `session` reports and restores (default ray.tune: its report, get_checkpoint and Checkpoint).
    """
    import ray

    if session is None:
        from ray import tune as session
    in_worker = ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    context = ray.get_runtime_context() if in_worker else None  # None: called outside a Ray worker, to debug
    if context is not None:
        torch.set_num_threads(max(1, int(context.get_assigned_resources().get("CPU", 1))))
    trainer = make_trainer(sampled, run["dataset"], run["seed"], run["data_root"], device=run["device"])
    checkpoint = session.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            trainer.load_state_dict(load_state(Path(directory) / STATE_FILE))
    node = context.get_node_id() if context is not None else None
    saved = {**run, "sampled": sampled}
    last_checkpoint = time.perf_counter()

    def on_epoch(tr, record):
        nonlocal last_checkpoint
        report = {**epoch_report(record, tr.config.epochs), BEST_VAL_SCORE: tr.best["val"]["score"],
                  NODE_ID: node}
        if tr.epoch < tr.config.epochs and time.perf_counter() - last_checkpoint < checkpoint_seconds:
            session.report(report, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as directory:
            save_state(tr, Path(directory) / STATE_FILE)
            write_json(Path(directory) / TRIAL_FILE, saved)
            session.report(report, checkpoint=session.Checkpoint.from_directory(directory))
        last_checkpoint = time.perf_counter()

    trainer.on_epoch = on_epoch
    trainer.fit()


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
