"""The lock every worker of one Optuna study shares: its storage is created and each trial is started under it.

A study in a file (SQLite, the journal of a run directory) is guarded by an OS file lock, which a worker's death
releases; a study on PostgreSQL or MySQL by the database's own named lock, so workers on several machines share it.
"""
from __future__ import annotations

import hashlib
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import filelock

NAMED_LOCKS = {"postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
               "mysql": ("SELECT GET_LOCK(:key, -1)", "SELECT RELEASE_LOCK(:key)"),
               "mariadb": ("SELECT GET_LOCK(:key, -1)", "SELECT RELEASE_LOCK(:key)")}
LOCK_NAME = "mtlsearch-study"  # one lock per database: creating its tables comes before any study exists


class StudyLock(ABC):
    """Held while a worker creates the storage or starts a trial; `with lock:` or acquire/release."""

    @abstractmethod
    def acquire(self) -> None:
        """Wait until no other worker holds the lock, then hold it."""

    @abstractmethod
    def release(self) -> None:
        """Let the next worker have it."""

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class FileLock(StudyLock):
    """An OS lock on a file in the temporary folder named after what it guards: nothing is written beside that."""

    def __init__(self, guarded: str):
        name = hashlib.sha256(guarded.encode()).hexdigest()[:20]
        self.lock = filelock.FileLock(Path(tempfile.gettempdir()) / f"mtlsearch-{name}.lock")

    def acquire(self) -> None:
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()


class ProcessLock(StudyLock):
    """For a storage whose workers mtlsearch cannot see (an Optuna storage you made): the threads of this process."""

    def __init__(self):
        self.lock = threading.Lock()

    def acquire(self) -> None:
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()


class DatabaseLock(StudyLock):
    """A database's named lock (PostgreSQL's advisory lock, MySQL's GET_LOCK), held on a connection of its own."""

    def __init__(self, url: str):
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.take, self.give = (sqlalchemy.text(s) for s in NAMED_LOCKS[self.engine.dialect.name])
        digest = hashlib.sha256(LOCK_NAME.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True) if self.engine.dialect.name == "postgresql" \
            else LOCK_NAME
        self.connection = None

    def acquire(self) -> None:
        self.connection = self.engine.connect()
        self.connection.execute(self.take, {"key": self.key})
        self.connection.commit()  # the lock belongs to the session: no transaction stays open while it is held

    def release(self) -> None:
        connection, self.connection = self.connection, None
        try:
            connection.execute(self.give, {"key": self.key})
        finally:
            connection.close()


def lock_for_url(url) -> StudyLock:
    """The lock of the studies in database `url` (a SQLAlchemy URL): the server's named lock, else a file lock."""
    if url.get_backend_name() in NAMED_LOCKS:
        return DatabaseLock(url.render_as_string(hide_password=False))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return FileLock(str(Path(url.database).resolve()))
    return FileLock(url.render_as_string(hide_password=False))  # workers on this machine share it
