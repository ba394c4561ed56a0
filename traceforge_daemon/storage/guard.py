"""What stands between the writer and a database that cannot take writes.

Before each transaction the writer asks ``StorageGuard.check`` whether to try at all:

- the file at the database's path must still be the file the writer has open (a database
  deleted or replaced under a running daemon would otherwise take acked writes into a
  file nobody will ever read again);
- the database's filesystem must keep ``DISK_RESERVE_BYTES`` free. That room is what a
  checkpoint needs to move the WAL back into the database: once a full disk has let the
  WAL take it, nothing can be written or checkpointed, even after a restart. Short of
  room, the guard first empties the WAL (a TRUNCATE checkpoint gives its space back),
  and refuses the transaction only if that is not enough;
- the WAL must stay under ``WAL_LIMIT_BYTES`` (a reader holding an old snapshot, or
  failing checkpoints, would otherwise grow it without end).

A refusal, and every failed transaction, becomes a ``Problem``: a protocol error code,
the real cause in words, whether resending can succeed, and how long a client should
wait first. The guard remembers the current one for health and the log, and forgets it
at the next commit, so ingest resumes by itself once the cause is gone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Optional

from traceforge_protocol import wire

logger = logging.getLogger("traceforge.daemon")

DISK_RESERVE_BYTES = 16 * 1024 * 1024
"""Free space the writer keeps on the database's filesystem: room for a checkpoint to copy
the last transactions out of the WAL (a transaction holds at most
``writer.MAX_BYTES_PER_TRANSACTION`` of frames) and for SQLite's shared-memory file."""
WAL_LIMIT_BYTES = 256 * 1024 * 1024
"""The writer refuses transactions while the WAL is larger than this and a checkpoint
cannot empty it; normally it restarts from the top every 16 MiB (checkpointer.py)."""
STORAGE_RETRY_AFTER_MS = 2000
"""How long a client is asked to wait before resending after a storage error."""

# Primary SQLite result codes (sqlite.org/rescode.html) that depend on the batch's data:
# the same batch fails again however often it is resent.
_DATA_CODES = {18, 19, 20, 25}  # TOOBIG, CONSTRAINT, MISMATCH, RANGE
_FULL = 13
_FULL_TEXT = "database or disk is full"
"""SQLite's own text for SQLITE_FULL (sqlite3ErrStr), unchanged for decades: how a full
disk is told on Python 3.10, whose sqlite3 errors carry no result code."""


@dataclass(frozen=True)
class Problem:
    """Why batches were not committed, as the client and health are told."""

    code: str  # a protocol error code: storage_error or storage_rejected
    reason: str  # a health reason code: disk_full, database_replaced, ...
    message: str
    retryable: bool
    retry_after_ms: Optional[int] = None


def _error_name(exc: BaseException) -> Optional[str]:
    """SQLite's name for the error (``SQLITE_FULL``, ...) where the exception carries it."""
    name = getattr(exc, "sqlite_errorname", None)
    if name is None and isinstance(exc, sqlite3.Error) and _FULL_TEXT in str(exc):
        return "SQLITE_FULL"
    return name


def describe(exc: BaseException) -> str:
    """The exception as one line, with SQLite's own error name when it has one."""
    name = _error_name(exc)
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({name})" if name else text


def classify(exc: BaseException) -> Problem:
    """A failed transaction's exception as a Problem. Anything but an environmental SQLite
    error (disk, I/O, locks, corruption) is taken to be the data's fault."""
    if isinstance(exc, sqlite3.Error) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
              sqlite3.ProgrammingError)
    ):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _DATA_CODES:
            full = code & 0xFF == _FULL if code is not None else (
                _error_name(exc) == "SQLITE_FULL")
            return Problem(wire.STORAGE_ERROR, "disk_full" if full else "storage_error",
                           describe(exc), True, STORAGE_RETRY_AFTER_MS)
    return Problem(wire.STORAGE_REJECTED, "batch_rejected",
                   f"the database cannot store this batch: {describe(exc)}", False)


def _identity(path: str) -> Optional[tuple[int, int]]:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class StorageGuard:
    """The writer's checks before each transaction, and the storage's current trouble."""

    def __init__(self, path: str, empty_wal: Callable[[], bool]) -> None:
        self.path = path
        self.wal_path = f"{path}-wal"
        self.directory = os.path.dirname(os.path.abspath(path))
        self.empty_wal = empty_wal
        """Runs a TRUNCATE checkpoint on the writer's connection; True if the WAL is empty."""
        self.identity = _identity(path)
        self.problem: Optional[Problem] = None
        self.problem_since = 0.0
        self.last_error_at = 0.0
        self.last_error: Optional[str] = None
        self.replaced = False

    # ---- before a transaction ----

    def check(self) -> Optional[Problem]:
        """None if a transaction may be tried now; else why not (also remembered)."""
        problem = self._database_moved() or self._disk_short() or self._wal_too_long()
        if problem is not None:
            self.failed(problem)
        return problem

    def _database_moved(self) -> Optional[Problem]:
        if self.replaced or _identity(self.path) != self.identity:
            self.replaced = True  # for good: the data acked from now on would be lost
            return Problem(
                wire.STORAGE_ERROR, "database_replaced",
                f"the database file {self.path} was deleted or replaced while the daemon "
                "had it open; nothing more is stored. Restart the daemon to open the file "
                "now at that path", True, STORAGE_RETRY_AFTER_MS)
        return None

    def free_bytes(self) -> Optional[int]:
        try:
            info = os.statvfs(self.directory)
        except (OSError, AttributeError):
            return None
        return info.f_bavail * info.f_frsize

    def _disk_short(self) -> Optional[Problem]:
        free = self.free_bytes()
        if free is None or free >= DISK_RESERVE_BYTES:
            return None
        self._try_empty_wal()
        free = self.free_bytes() or 0
        if free >= DISK_RESERVE_BYTES:
            return None
        return Problem(
            wire.STORAGE_ERROR, "disk_full",
            f"only {free:,} bytes free on the filesystem of {self.path}; the daemon keeps "
            f"{DISK_RESERVE_BYTES:,} free so that checkpoints can always run. Free some "
            "space or prune old traces (traceforge-daemon prune): ingest resumes by itself",
            True, STORAGE_RETRY_AFTER_MS)

    def _wal_too_long(self) -> Optional[Problem]:
        if self._wal_bytes() <= WAL_LIMIT_BYTES:
            return None
        self._try_empty_wal()
        size = self._wal_bytes()
        if size <= WAL_LIMIT_BYTES:
            return None
        return Problem(
            wire.STORAGE_ERROR, "wal_full",
            f"the WAL {self.wal_path} holds {size:,} bytes and a checkpoint cannot empty "
            "it (a reader holding an old snapshot, or a failing disk)",
            True, STORAGE_RETRY_AFTER_MS)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.wal_path)
        except OSError:
            return 0

    def _try_empty_wal(self) -> None:
        try:
            self.empty_wal()
        except sqlite3.Error as exc:
            logger.debug("emptying the WAL failed: %s", describe(exc))

    # ---- after a transaction ----

    def failed(self, problem: Problem) -> None:
        """A transaction failed or was refused: remember why; say so once per cause."""
        now = time.time()
        self.last_error_at, self.last_error = now, problem.message
        if problem.code == wire.STORAGE_REJECTED:
            return  # one batch's content: the storage itself is fine
        if self.problem is None or self.problem.reason != problem.reason:
            logger.error("storage is failing (%s): %s", problem.reason, problem.message)
            self.problem_since = now
        self.problem = problem
        if problem.reason == "disk_full":
            self._try_empty_wal()  # give the WAL's space back while nothing else can be done

    def committed(self) -> None:
        if self.problem is not None:
            logger.warning("storage works again after %.1f s of %s",
                           time.time() - self.problem_since, self.problem.reason)
            self.problem = None
