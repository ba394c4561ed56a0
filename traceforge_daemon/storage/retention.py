"""Retention: delete old traces in small pieces, then give the space back.

A ``Prune`` is a writer job (``writer.WriterJob``): each step is one short transaction
of at most CHUNK_ROWS deleted rows, and between steps the writer commits the batches
that arrived meanwhile, so ingest never waits behind more than one chunk. It deletes:

1. by age (``older_than`` seconds): runs that started before the cutoff, with all their
   steps, except runs still ``running``; then steps older than the cutoff whose run row
   never arrived; then client drop counts reported before it;
2. by size (``max_bytes``): the oldest runs, whatever their age (running ones excepted),
   until the data in the database (its pages minus its free pages) fits;
3. the freed pages go to the database's free list, and new writes take them before the
   file grows again, so retention keeps the file at the size its data needs. Giving them
   back to the filesystem takes a rewrite: ``traceforge-daemon prune --vacuum``, with the
   daemon stopped. (A database the user has switched to ``auto_vacuum=INCREMENTAL``
   gives them back at once: the last phase runs ``PRAGMA incremental_vacuum`` there.
   TraceForge does not switch it on itself: it costs about a fifth of SQLite's insert
   rate for our schema, measured on this project's 2-core machines.)

``bytes_before`` and ``bytes_after`` are the bytes the data takes (pages in use), and
``free_bytes_after`` the free pages left for new writes to reuse.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .writer import WriterJob

CHUNK_ROWS = 2000
"""Rows one retention transaction deletes at most (about 20-40 ms of the writer's time)."""
RUNS_PER_CHUNK = 100
VACUUM_PAGES = 2048
"""Free pages one incremental-vacuum step gives back (8 MiB with 4 KiB pages)."""

OLDEST_RUNS = """
SELECT run_id FROM runs WHERE started_at < ? AND status != 'running'
ORDER BY started_at LIMIT ?
"""
ORPHAN_STEPS = """
DELETE FROM steps WHERE rowid IN (
    SELECT rowid FROM steps WHERE started_at < ? AND status != 'running'
      AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.run_id = steps.run_id)
    LIMIT ?)
"""


@dataclass
class PruneResult:
    runs_deleted: int = 0
    steps_deleted: int = 0
    drops_deleted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    free_bytes_after: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def database_bytes(conn: sqlite3.Connection) -> tuple[int, int]:
    """(bytes in use, bytes of the whole database) as SQLite sees it, WAL included."""
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    return (pages - free) * page_size, pages * page_size


class Prune(WriterJob):
    def __init__(self, older_than: Optional[float], max_bytes: Optional[int],
                 on_done: Callable[[Optional[PruneResult], Optional[BaseException]], None]
                 = lambda result, error: None) -> None:
        self.cutoff = None if older_than is None else time.time() - older_than
        self.max_bytes = max_bytes
        self.on_done = on_done
        self.result = PruneResult()
        self.started = time.monotonic()
        self.phases = [p for p, wanted in (
            (self._by_age, self.cutoff is not None),
            (self._orphans, self.cutoff is not None),
            (self._drops, self.cutoff is not None),
            (self._by_size, max_bytes is not None),
            (self._reclaim, True),
        ) if wanted]
        self.runs: list = []  # the runs being deleted, whose steps go first

    def step(self, conn: sqlite3.Connection) -> bool:
        if not self.result.bytes_before:
            self.result.bytes_before = database_bytes(conn)[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            phase_done = self.phases[0](conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if phase_done:
            self.phases.pop(0)
        return not self.phases

    def settle(self, error: Optional[BaseException]) -> None:
        self.result.seconds = time.monotonic() - self.started
        self.on_done(None if error else self.result, error)

    # ---- phases: each does one chunk and says whether the phase is over ----

    def _delete_runs(self, conn: sqlite3.Connection, before: float, runs: int,
                     budget: int) -> tuple[bool, int]:
        """Delete up to ``budget`` rows of the oldest runs started before ``before``, taking
        ``runs`` runs at a time: (True if no such run is left, rows deleted)."""
        if not self.runs:
            self.runs = [r for (r,) in conn.execute(OLDEST_RUNS, (before, runs))]
            if not self.runs:
                return True, 0
        marks = ", ".join("?" * len(self.runs))
        deleted = conn.execute(
            f"DELETE FROM steps WHERE rowid IN (SELECT rowid FROM steps "
            f"WHERE run_id IN ({marks}) LIMIT ?)", (*self.runs, budget)).rowcount
        self.result.steps_deleted += deleted
        if deleted < budget:  # every step of these runs is gone: now the runs
            gone = conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})",
                                self.runs).rowcount
            self.result.runs_deleted += gone
            deleted += gone
            self.runs = []
        return False, deleted

    def _by_age(self, conn: sqlite3.Connection) -> bool:
        done, _ = self._delete_runs(conn, self.cutoff, RUNS_PER_CHUNK,  # type: ignore
                                    CHUNK_ROWS)
        return done

    def _orphans(self, conn: sqlite3.Connection) -> bool:
        deleted = conn.execute(ORPHAN_STEPS, (self.cutoff, CHUNK_ROWS)).rowcount
        self.result.steps_deleted += deleted
        return deleted < CHUNK_ROWS

    def _drops(self, conn: sqlite3.Connection) -> bool:
        self.result.drops_deleted += conn.execute(
            "DELETE FROM client_drops WHERE reported_at < ?", (self.cutoff,)).rowcount
        return True

    def _by_size(self, conn: sqlite3.Connection) -> bool:
        """One run at a time, the size checked before each, within one chunk's rows."""
        budget = CHUNK_ROWS
        while budget > 0:
            if not self.runs and database_bytes(conn)[0] <= self.max_bytes:  # type: ignore
                return True
            done, deleted = self._delete_runs(conn, float("inf"), 1, budget)
            if done:
                return True
            budget -= max(deleted, 1)
        return False

    def _reclaim(self, conn: sqlite3.Connection) -> bool:
        (mode,) = conn.execute("PRAGMA auto_vacuum").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        if mode == 2 and free:  # INCREMENTAL
            conn.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})").fetchall()
            (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        if mode != 2 or not free:
            used, total = database_bytes(conn)
            self.result.bytes_after, self.result.free_bytes_after = used, total - used
            return True
        return False


def vacuum(conn: sqlite3.Connection) -> None:
    """Rewrite the whole database (no daemon may be running): every free page goes back to
    the filesystem. Needs free space for a copy of the data while it runs."""
    conn.execute("VACUUM")
