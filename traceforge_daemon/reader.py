"""Read-only access to the database for the HTTP API, kept off the writer's path.

Every read runs in a small thread pool of its own, on a per-thread connection opened
with ``mode=ro`` and ``PRAGMA query_only``: never on the event loop (which also serves
ingest) and never on the writer's connection or inside its transaction. SQLite's WAL
lets these readers see the last commit while the writer carries on.

A read function receives the connection and returns plain data, usually the encoded
response body, so that building and encoding big responses happens off the loop too.
Queries that run past ``deadline`` seconds are interrupted (see ``QueryTimeout``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

logger = logging.getLogger("traceforge.daemon")

READER_THREADS = 3
"""Concurrent reads. SQLite releases the GIL while it searches, so a few threads keep a
slow query from queueing the fast ones behind it; more would only compete for 2 cores."""

READER_NICENESS = 19
"""While ingest is busy, reads run on threads at the lowest CPU priority (Linux; ignored
elsewhere), so a heavy query slows itself down, not ingest. Measured on 2 cores with
queries asked back to back during ingest: ingest kept 75% of its rate at niceness 5 and
85-105% at 19 (bench/RESULTS-query.md). While ingest is idle, reads run on threads of
normal priority instead: at niceness 19 any other busy process on the machine (say the
user's own pipeline) would starve them, and a 50,000-step run took 20 s instead of 1.5."""

DEFAULT_DEADLINE = 30.0

READER_PRAGMAS = (
    "PRAGMA query_only=1",
    "PRAGMA busy_timeout=5000",
    "PRAGMA cache_size=-32768",  # 32 MiB per reader
    "PRAGMA mmap_size=268435456",
    "PRAGMA temp_store=MEMORY",
)


class QueryTimeout(Exception):
    """A read ran past its deadline and was interrupted."""


def open_reader_connection(path: Path | str) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro`` so it cannot write even by mistake."""
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    for pragma in READER_PRAGMAS:
        conn.execute(pragma)
    return conn


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short read transaction, so several queries see the same commit."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


class Reader:
    """A pool of read-only connections, one per reader thread."""

    def __init__(self, path: Path | str, threads: int = READER_THREADS,
                 ingest_busy: Callable[[], bool] = lambda: True) -> None:
        self.path = Path(path)
        self.ingest_busy = ingest_busy
        self._yielding = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="traceforge-reader-low",
            initializer=_lower_thread_priority,
        )
        # Priority can be lowered but not raised again without privileges, hence a
        # second pool rather than renicing threads back and forth.
        self._normal = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="traceforge-reader",
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.queries = 0
        self.timeouts = 0

    async def run(self, fn: Callable[..., Any], *args: Any,
                  deadline: float = DEFAULT_DEADLINE) -> Any:
        """Run ``fn(conn, *args)`` on a reader thread and return its result."""
        loop = asyncio.get_running_loop()
        executor = self._yielding if self.ingest_busy() else self._normal
        return await loop.run_in_executor(executor, self._call, fn, args, deadline)

    def _call(self, fn: Callable[..., Any], args: tuple, deadline: float) -> Any:
        conn = self._connection()
        stop_at = time.monotonic() + deadline
        # Checked every million SQLite instructions (a few ms): often enough for the
        # deadline, rarely enough not to take the GIL from ingest.
        conn.set_progress_handler(lambda: time.monotonic() > stop_at, 1_000_000)
        self.queries += 1
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                self.timeouts += 1
                raise QueryTimeout(f"query ran longer than {deadline:g} s") from None
            raise
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:  # a failed read must not pin an old snapshot
                conn.execute("ROLLBACK")

    def _connection(self) -> sqlite3.Connection:
        conn: Optional[sqlite3.Connection] = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_reader_connection(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Wait for reads in flight, then close every connection. Idempotent."""
        self._yielding.shutdown(wait=True, cancel_futures=True)
        self._normal.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                logger.exception("closing a reader connection failed")


def _lower_thread_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICENESS)
    except (AttributeError, OSError):
        pass
