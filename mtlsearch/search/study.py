"""Optuna studies for a search: their storage, creating or joining one, and the objective that trains a trial.

Several workers share one study by pointing `storage` at one database URL; the default is a journal file in the
run directory. The storage's tables and the study are created under the workers' shared lock (study_lock), so
workers started together never collide, and a storage that cannot be opened is one UserError line.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from ..errors import UserError
from .config import OBJECTIVES, describe_differences, make_sampler
from .study_lock import FileLock, ProcessLock, StudyLock, lock_for_url
from .trial import epoch_report, make_trainer, save_state

VALID_STORAGE = ("valid: sqlite:///FILE.db, postgresql+psycopg://USER@HOST/DB (pip install "
                 "'mtlsearch[postgres]'), mysql+pymysql://USER@HOST/DB, or none for a journal file in the run "
                 "directory")
HEARTBEAT_SECONDS = 60  # on a database, a trial whose worker stays silent for three heartbeats is failed
STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


@dataclass
class StudyStorage:
    """An Optuna storage and the lock every worker of its studies shares."""

    storage: optuna.storages.BaseStorage
    lock: StudyLock


def open_storage(url: str | None, run_dir: Path | None = None) -> StudyStorage:
    """The database at `url` (its tables created under the lock), else the journal file `run_dir/optuna.journal`."""
    if not url:
        path = Path(run_dir) / "optuna.journal"
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return StudyStorage(optuna.storages.JournalStorage(backend), FileLock(str(path.resolve())))
    parsed = _parse(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        lock = lock_for_url(parsed)
        with lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is experimental
            storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                 grace_period=3 * HEARTBEAT_SECONDS)
    except ImportError as err:
        raise UserError(f"cannot open `storage` {shown}: its database driver is missing ({err}); {VALID_STORAGE}",
                        ("storage",)) from None
    except (*STORAGE_ERRORS, OSError) as err:
        raise UserError(f"cannot open `storage` {shown}: {storage_reason(err)}; {VALID_STORAGE}",
                        ("storage",)) from None
    return StudyStorage(storage, lock)


def storage_for(run_dir: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The Optuna storage of `open_storage`: a database URL, else a journal file `run_dir/optuna.journal`."""
    return open_storage(url, run_dir).storage


def _parse(url: str):
    """`url` as a SQLAlchemy URL of a database kind SQLAlchemy knows; a SQLite file's folder must exist."""
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise UserError(f"`storage` {url}: unknown database kind {url.split(':')[0]!r}; {VALID_STORAGE}",
                        ("storage",)) from None
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"`storage` {url} is not a database URL; {VALID_STORAGE}", ("storage",)) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise UserError(f"`storage` {url}: folder {folder} does not exist; create it first or give another file",
                            ("storage",))
    return parsed


def storage_reason(err: BaseException) -> str:
    """The first line of what the database said, without SQLAlchemy's wrapping and its background link."""
    cause = getattr(err, "orig", None) or err.__cause__ or err
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _study_storage(storage) -> StudyStorage:
    """What `create_study` was given: a StudyStorage, a URL, or an Optuna storage of your own."""
    if isinstance(storage, StudyStorage):
        return storage
    if isinstance(storage, str):
        return open_storage(storage)
    if isinstance(storage, optuna.storages.RDBStorage):
        return StudyStorage(storage, lock_for_url(make_url(storage.url)))
    return StudyStorage(storage, ProcessLock())


def join_study(name: str, storage, objectives: list[str], seed: int = 0, sampler: str = "tpe",
               pruner: optuna.pruners.BasePruner | None = None, *, settings: dict | None = None,
               first: list[dict] = ()) -> tuple[optuna.Study, int]:
    """Create the study `name` or join it; returns it and this worker's number (0: it created the study).

    The worker that creates it records `settings` and queues the `first` points; one that joins must bring the
    same settings, and samples with `seed + number` so that workers do not draw the same trials.
    """
    store = _study_storage(storage)
    directions = [OBJECTIVES[o] for o in objectives]
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    with store.lock:
        try:
            study = optuna.create_study(study_name=name, storage=store.storage, directions=directions,
                                        sampler=make_sampler(sampler, seed), pruner=pruner)
            worker = 0
            if settings is not None:
                study.set_user_attr("search", settings)
            for point in first:
                study.enqueue_trial(point)
        except optuna.exceptions.DuplicatedStudyError:
            attrs = store.storage.get_study_user_attrs(store.storage.get_study_id_from_name(name))
            worker = attrs.get("workers", 1)
            study = optuna.load_study(study_name=name, storage=store.storage,
                                      sampler=make_sampler(sampler, seed + worker), pruner=pruner)
            _check_joined(study, name, directions, settings, attrs.get("search"))
        study.set_user_attr("workers", worker + 1)
    return study, worker


def _check_joined(study: optuna.Study, name: str, directions: list[str], settings: dict | None,
                  recorded: dict | None) -> None:
    """Refuse to join a study that optimises other objectives or was started with other settings."""
    had = [d.name.lower() for d in study.directions]
    if had != directions:
        raise UserError(f"study {name} optimises {len(had)} objective(s) ({', '.join(had)}), not "
                        f"{len(directions)}; give the same `objectives` or another `name`", ("objectives", "name"))
    differences = describe_differences(settings, recorded) if settings and recorded else None
    if differences:
        raise UserError(f"study {name} was started with other settings ({differences}); give every worker the same "
                        "settings, or another `name`", ("name",))


def create_study(name: str, storage, objectives: list[str], seed: int = 0, sampler: str = "tpe",
                 pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create or load the study `name` (a StudyStorage, a URL or an Optuna storage); TPE by default, NSGA-II for
    several objectives when asked; several processes may call this together."""
    return join_study(name, storage, objectives, seed, sampler, pruner)[0]


def objective(dataset: str, space: Callable, *, seed: int = 0, objectives: list[str] = ("score",),
              data_root: str | None = None, trial_dir: Path | None = None, prune: bool = True) -> Callable:
    """`objective(trial)` for `study.optimize`: sample a config from `space`, train, report each epoch, prune.

    Returns the best validation score (and the parameter count with `objectives=["score", "params"]`); what the
    space sampled, the parameter count and, with `trial_dir`, the final trainer state are kept for export.
    """
    objectives = list(objectives)

    def run(trial: optuna.Trial):
        sampled = space(trial)
        trial.set_user_attr("config", sampled)
        trainer = make_trainer(sampled, dataset, seed, data_root)

        def on_epoch(tr, record):
            report = epoch_report(record, tr.config.epochs)
            trial.set_user_attr("params", report["params"])
            if len(objectives) == 1 and prune:  # Optuna prunes single-objective studies only
                trial.report(report["val_score"], report["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {report['epoch']}")

        trainer.on_epoch = on_epoch
        try:
            best = trainer.fit()
        except optuna.TrialPruned:
            raise
        except Exception as err:  # recorded on the trial; study.optimize(catch=...) marks it failed and goes on
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            raise
        if trial_dir is not None:
            path = trial_state_file(trial_dir, trial.number)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_state(trainer, path)
            trial.set_user_attr("state_path", str(path))
        values = {"score": best["val"]["score"], "params": float(trainer.params())}
        return values["score"] if len(objectives) == 1 else tuple(values[o] for o in objectives)

    return run


def trial_state_file(trial_dir: str | Path, number: int) -> Path:
    """Where the objective saves trial `number`'s final trainer state under `trial_dir`."""
    return Path(trial_dir) / f"trial_{number}" / "trainer.pt"
