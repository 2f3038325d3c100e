"""Several workers on one Optuna study: one run directory they may share, a number of trials that is the study's
total, and results that wait for the other workers' last trials so that each worker's summary covers the study.
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from typing import Callable

import optuna
from optuna.trial import TrialState

from ..errors import UserError
from ..run import prepare_out_dir, write_json
from .config import SearchConfig, describe_differences
from .study_lock import FileLock, StudyLock

STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # not a queued WAITING one


def run_dir_lock(config: SearchConfig) -> FileLock:
    """Held by a worker while it creates or joins the run directory, and while it writes the results there."""
    return FileLock(f"run directory {config.run_dir.resolve()}")


def open_run_dir(config: SearchConfig, overwrite: bool, record: dict) -> None:
    """Create the run directory with `record` as its search.json; an Optuna worker joins the directory of the
    same search instead: the same backend, storage and study settings (search.json says which).

    `overwrite` never joins: it replaces the directory.
    """
    run_dir, saved = config.run_dir, config.run_dir / "search.json"
    if config.backend != "optuna" or overwrite:
        prepare_out_dir(run_dir, overwrite)
        write_json(saved, record)
        return
    mine = {**config.study_settings(), "backend": config.backend, "storage": config.storage}
    with run_dir_lock(config):
        if saved.is_file():
            differences = describe_differences(mine, json.loads(saved.read_text()))
            if differences:
                raise UserError(f"`out` {run_dir} holds another search ({differences}); give the same settings to join "
                                "it as another worker, or another `name`", ("out", "name"))
            return
        prepare_out_dir(run_dir, False)
        write_json(saved, record)


def worker_name() -> str:
    """`host:pid`, recorded on each trial so that a trial whose worker was killed can be told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _gone(worker: str) -> bool:
    """True when `worker` ran on this machine and its process no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or os.name != "posix":
        return False
    try:
        os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fail_abandoned_trials(study: optuna.Study) -> None:
    """Fail the running trials nobody runs any more: a killed worker's on this machine, a silent one's on a database."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # the database's heartbeat; nothing for a journal file
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _gone(trial.user_attrs.get("worker", "")):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


class TrialBudget:
    """`trials` is the study's total over all its workers: counting the started trials and Optuna's `ask` of the
    next one happen under the workers' shared lock, so two workers never both take the last place.

    As an Optuna callback it takes the lock after each trial and keeps it through the `ask` when there is room
    (else it stops the study); the objective's first step, `release`, gives it back.
    """

    def __init__(self, lock: StudyLock, total: int):
        self.lock, self.total, self.held = lock, total, False

    def reserve(self, study: optuna.Study) -> bool:
        """Take the lock; keep it and return True when the study has room for one more trial."""
        self.lock.acquire()
        self.held = True
        try:
            fail_abandoned_trials(study)
            room = len(study.get_trials(deepcopy=False, states=STARTED)) < self.total
        except BaseException:
            self.release()
            raise
        if not room:
            self.release()
        return room

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()

    def __call__(self, study: optuna.Study, trial) -> None:
        if not self.reserve(study):
            study.stop()


def wait_for_other_workers(study: optuna.Study, note: Callable[[str], None], poll_seconds: float = 1.0) -> None:
    """Return once no trial of the study runs, so that this worker's results cover the whole study."""
    told = False
    while True:
        fail_abandoned_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not told:
            note(f"waiting for trial(s) {', '.join(str(t.number) for t in running)} of other workers to end")
            told = True
        time.sleep(poll_seconds)
