"""A training run from names to files: validate everything first, then train, evaluate and export.

`RunWriter` writes every finished run the same way, whether it was trained, retrained or picked from a search;
`resume_run` continues a run of `train` from its checkpoint to where it would have got straight.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigError, UserError
from .problems import load_problem
from .settings import declared_settings, split_settings
from .strategies import get_strategy
from .structure.export import export_structure
from .training import Trainer, evaluate

CHECKPOINT = "checkpoint.pt"
SEEDS = 2**32  # a seed seeds numpy's legacy generator too, which takes 0 .. 2**32 - 1


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run that has a checkpoint: the message says how to continue it."""


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEEDS:
        raise UserError(f"`seed` must be a whole number from 0 to {SEEDS - 1}, got {seed!r}", ("seed",))


def prepare_out_dir(out: str | Path, overwrite: bool) -> Path:
    """Create `out` with any missing parents (as mkdir -p does); an existing non-empty directory is refused unless
    `overwrite` (then replaced). When `out` cannot be created, no parent made on the way is left behind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"`out` {out} is a file; give a directory", ("out",))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"`out` {out} exists and is not empty; pass `overwrite` to replace it or choose another "
                            "`out`", ("out", "overwrite"))
        shutil.rmtree(out)
    blocker = next((p for p in out.parents if p.is_file()), None)
    if blocker is not None:
        raise UserError(f"`out` {out} is under {blocker}, a file; give a path under a directory", ("out",))
    made = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable", str(out))
    except OSError as err:
        for directory in made:
            try:
                directory.rmdir()
            except OSError:
                pass
        raise UserError(f"`out` {out} cannot be created: {err.strerror} ({err.filename}); give a directory you "
                        "can write", ("out",)) from None
    return out


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict:
    """A JSON file the run wrote, with a one-line error naming it when it is not valid JSON."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a JSON {type(data).__name__}, not an object of named values")
    return data


def save_atomically(state: dict, path: Path) -> None:
    """torch.save to a temporary file beside `path`, flushed to disk, then renamed over it: a kill during the write
    leaves the previous file whole."""
    partial = path.with_name(path.name + ".tmp")
    try:
        with open(partial, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_checkpoint(path: Path, device=None) -> dict:
    """A checkpoint loaded with weights_only=True; a damaged file, or one holding other objects, is one line."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: holds objects a weights-only load refuses, so it is not loaded (mtlsearch did not "
                        "write it, or it was altered)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: not a readable checkpoint ({detail})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a checkpoint")
    return state


def checkpoint(trainer: Trainer, train_seconds: float) -> dict:
    """What checkpoint.pt holds: the best model (`weights`, `architecture`, `epoch`) and the trainer's whole state
    after its last epoch (`trainer`, with the `train_seconds` so far), which `resume_run` continues exactly."""
    best = trainer.best
    return {"weights": best["weights"], "architecture": best["state"], "epoch": best["epoch"],
            "trainer": trainer.state_dict(), "train_seconds": train_seconds}


def build_trainer(dataset: str, strategy: str, seed: int, settings: dict, *, data_root: str | None = None,
                  download: bool = False, quiet: bool = False, device: str | None = None) -> Trainer:
    """A trainer of `strategy` on `dataset`, everything validated and nothing written."""
    check_seed(seed)
    cls = get_strategy(strategy)
    train_config, strategy_config = split_settings(settings, cls)
    problem = load_problem(dataset, data_root=data_root, download=download)
    return Trainer(problem, cls(problem, strategy_config, seed), train_config, seed=seed, quiet=quiet, device=device)


@contextmanager
def resume_hint(out: Path):
    """Ctrl-C once `out` has a checkpoint ends with the command that continues the run."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, TrainingInterrupted) or not (out / CHECKPOINT).is_file():
            raise
        raise TrainingInterrupted(f"interrupted; continue from the last finished epoch with: "
                                  f"mtlsearch train --resume {out}") from None


def train_run(dataset: str, strategy: str, out: str | Path, *, epochs: int | None = None, seed: int = 0,
              settings: dict | None = None, overwrite: bool = False, quiet: bool = False,
              data_root: str | None = None, download: bool = False, device: str | None = None) -> dict:
    """Train one strategy on one problem and write config.json, metrics.json, checkpoint.pt and the structure.

    Args:
        dataset: a registry name (`mtlsearch datasets`, parameters after a colon), a .npz path or `module:attribute`.
        strategy: a strategy name (`mtlsearch strategies`).
        out: the run directory; an existing non-empty one is kept unless `overwrite`.
        epochs: epochs to train (default: the trainer's 20, or `settings["epochs"]`).
        seed: every random choice of the run; the same seed gives the same result on the CPU.
        settings: trainer settings (`lr`, `batch_size`, ...) and the strategy's own, by name.
        overwrite, quiet, data_root, download, device: as the `train` command's options.

    Returns:
        The metrics written to metrics.json (validation and test scores, parameters, history, the strategy's report).

    Example:
        >>> from mtlsearch import train
        >>> metrics = train("digits", "task_routing", "runs/tr", epochs=3, settings={"sigma": 0.4})
        >>> metrics["test"]["score"] > 0.5
        True
    """
    settings = dict(settings or {})
    if epochs is not None:
        settings["epochs"] = epochs
    trainer = build_trainer(dataset, strategy, seed, settings, data_root=data_root, download=download, quiet=quiet,
                            device=device)
    out = prepare_out_dir(out, overwrite)  # settings that do not fit the backbone fail before `out` is touched
    with resume_hint(out):
        return RunWriter(out, dataset, strategy, seed, data_root).fit_and_write(trainer)


def _run_config(run_dir: Path) -> dict:
    """The config.json of a run `train` wrote, checked to hold what resuming needs."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    absent = [name for name in ("config.json", CHECKPOINT) if not (run_dir / name).is_file()]
    if absent:
        raise UserError(f"{run_dir} holds no {' and no '.join(absent)}; give a directory `mtlsearch train` wrote "
                        "(it checkpoints after each epoch)")
    config = read_json(run_dir / "config.json")
    if "retrain" in config:
        raise UserError(f"{run_dir} is a retrain; resuming continues runs of `mtlsearch train` (retrain again, "
                        "with --finetune to start from its weights)")
    missing = [k for k in ("dataset", "strategy", "seed", "train", "strategy_config") if k not in config]
    if missing:
        raise UserError(f"{run_dir / 'config.json'} lacks {', '.join(missing)}; give a directory `mtlsearch train` "
                        "wrote")
    return config


def _refuse_changes(config: dict, given: dict, settings: dict) -> None:
    """A resumed run is the run it was: a given name or setting that differs from config.json is refused."""
    for name, value in given.items():
        if value is not None and value != config.get(name):
            raise UserError(f"`{name}` {value!r} contradicts the run's {config.get(name)!r}; a resumed run keeps "
                            f"what it started with (leave `{name}` out, or train a new run)", (name,))
    cls = get_strategy(config["strategy"])
    split_settings(settings, cls)  # unknown keys and bad values are refused as for a new run
    declared = declared_settings(cls)
    kept = {**config["train"], **config["strategy_config"]}
    for key, value in settings.items():
        saved = kept.get(key, declared[key].default)
        if declared[key].coerce(value) != declared[key].coerce(saved):
            raise ConfigError(f"`settings` {key}={value!r} contradicts the run's {key}={saved!r}; a resumed run keeps "
                              "its settings (leave it out, or train a new run)", ("settings",))


def resume_run(run_dir: str | Path, *, epochs: int | None = None, settings: dict | None = None,
               strategy: str | None = None, dataset: str | None = None, seed: int | None = None,
               data_root: str | None = None, download: bool = False, quiet: bool = False,
               device: str | None = None) -> dict:
    """Continue a run of `train` from its checkpoint to `epochs` (default: its configured count) and rewrite its
    outputs; the result equals training that many epochs straight. Names and settings given must match the run's.

    Args:
        run_dir: a directory written by `train` (config.json and checkpoint.pt).
        epochs: the total epochs to reach (default: the run's configured count).
        settings, strategy, dataset, seed: optional; each must agree with the run's own.
        data_root, download, quiet, device: as the `train` command's options.

    Example:
        >>> from mtlsearch.run import resume_run
        >>> metrics = resume_run("runs/tr", epochs=6)  # a run of 3 epochs, trained on to 6
    """
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    settings = dict(settings or {})
    epochs_set = settings.pop("epochs", None)  # `epochs` is what resuming changes, given either way
    epochs = epochs_set if epochs is None else epochs
    _refuse_changes(config, {"strategy": strategy, "dataset": dataset, "seed": seed, "data_root": data_root},
                    settings)
    kept = {**config["train"], **config["strategy_config"]}
    if epochs is not None:
        kept["epochs"] = epochs
    trainer = build_trainer(config["dataset"], config["strategy"], config["seed"], kept,
                            data_root=config.get("data_root"), download=download, quiet=quiet, device=device)
    path = run_dir / CHECKPOINT
    state = load_checkpoint(path, trainer.device)
    if "trainer" not in state:
        raise UserError(f"{path}: holds the best model but no training state to continue from (a search's best "
                        "trial, or an older mtlsearch); retrain it with --finetune instead")
    try:
        trainer.load_state_dict(state["trainer"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: does not fit the run's config.json ({detail})") from None
    if trainer.config.epochs < trainer.epoch:
        raise UserError(f"`epochs` {trainer.config.epochs} is fewer than the {trainer.epoch} epochs {run_dir} has "
                        f"trained; give at least {trainer.epoch}", ("epochs",))
    writer = RunWriter(run_dir, config["dataset"], config["strategy"], config["seed"], config.get("data_root"))
    with resume_hint(run_dir):
        return writer.fit_and_write(trainer, trained_seconds=float(state.get("train_seconds", 0.0)))


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

    def fit_and_write(self, trainer: Trainer, trained_seconds: float = 0.0) -> dict:
        """config.json first (a run that stops still says what it was), then fit with one line per epoch in
        metrics.jsonl and checkpoint.pt after each epoch (so Ctrl-C can be resumed), then the results; returns the
        metrics. A resumed trainer's epochs so far are its first lines, `trained_seconds` their time."""
        trainer.out_dir = self.out
        self.write_config(trainer)
        (self.out / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in trainer.history))
        started = time.perf_counter()
        hook = trainer.on_epoch

        def after_epoch(fitted: Trainer, record: dict) -> None:
            save_atomically(checkpoint(fitted, trained_seconds + time.perf_counter() - started), self.out / CHECKPOINT)
            if hook:
                hook(fitted, record)

        trainer.on_epoch = after_epoch
        try:
            trainer.fit()
        finally:
            trainer.on_epoch = hook
        return self.write_tested(trainer, trained_seconds + time.perf_counter() - started)

    def write_config(self, trainer: Trainer) -> None:
        """config.json: the dataset, strategy, seed, trainer and strategy settings, data root and origin."""
        strategy_config = trainer.strategy.config if self.strategy_config is None else self.strategy_config
        write_json(self.out / "config.json", {"dataset": self.dataset, "strategy": self.strategy, "seed": self.seed,
                                              "train": trainer.config.__dict__, "strategy_config": strategy_config,
                                              "data_root": self.data_root, **self.origin})

    def write_results(self, trainer: Trainer, train_seconds: float | None = None) -> dict:
        """For a trainer fitted elsewhere (a search's trial): checkpoint.pt with its best model only (no state to
        continue from), then what `write_tested` writes; returns the metrics."""
        save_atomically({"weights": trainer.model.state_dict(), "architecture": trainer.best["state"],
                         "epoch": trainer.best["epoch"]}, self.out / CHECKPOINT)
        return self.write_tested(trainer, train_seconds)

    def write_tested(self, trainer: Trainer, train_seconds: float | None = None) -> dict:
        """Test the best model; write metrics.json and the exported structure; return the metrics.

        `train_seconds` is the wall time of fitting (left out when the run was not fitted here).
        """
        result = tested(trainer)
        seconds = {} if train_seconds is None else {"train_seconds": round(train_seconds, 3)}
        metrics = {"strategy": self.strategy, "dataset": self.dataset, "seed": self.seed, **self.origin,
                   "params": result["params"], "best_epoch": result["best_epoch"], **seconds, "val": result["val"],
                   "test": result["test"], **result["report"], "history": result["history"]}
        write_json(self.out / "metrics.json", metrics)
        structure, weights = trainer.strategy.structure(trainer.model)
        structure.set_metrics({"val_score": result["val"]["score"], "test_score": result["test"]["score"],
                               "params": result["params"]})
        export_structure(self.out, structure, weights)
        trainer.strategy.artifacts(trainer.model, self.out)
        return metrics
