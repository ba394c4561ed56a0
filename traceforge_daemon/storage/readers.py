"""Read-only access to the database for the HTTP API, kept off the writer's path.

Every read runs in a reader *process* of its own, on a connection opened with
``mode=ro`` and ``PRAGMA query_only``: never on the event loop (which also serves
ingest), never on the writer's connection or inside its transaction, and never in the
daemon's process, where its Python work would contend with ingest for the GIL. SQLite's
WAL lets these readers see the last commit while the writer carries on.

A read is a top-level function ``job(conn, *args)`` (see ``jobs.py``) that returns
plain data, usually the encoded response body, so building big responses happens in the
reader process too. Queries that run past ``deadline`` seconds are interrupted
(``QueryTimeout``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

logger = logging.getLogger("traceforge.daemon")

READER_PROCESSES = 2
"""Concurrent reads per pool. A slow query does not queue the fast ones behind it, and
two match the two cores these machines have."""

READER_NICENESS = 19
"""While ingest is busy, reads go to processes at the lowest CPU priority (Linux; ignored
elsewhere), so a heavy query slows itself down, not ingest. While ingest is idle they go
to processes of normal priority instead: at niceness 19 any other busy program on the
machine (say the user's own pipeline) would starve them."""

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


_worker_path: Optional[str] = None
_worker_conn: Optional[sqlite3.Connection] = None


def _start_worker(path: str, niceness: int) -> None:
    """Runs once in each reader process."""
    global _worker_path
    _worker_path = path
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the daemon, which stops us
    if niceness:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
        except (AttributeError, OSError):
            pass
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A daemon killed with SIGKILL cannot stop its readers: they notice and leave."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _run_job(fn: Callable[..., Any], args: tuple, deadline: float) -> Any:
    """Runs in a reader process: ``fn(conn, *args)`` with a deadline."""
    global _worker_conn
    if _worker_conn is None:
        _worker_conn = open_reader_connection(_worker_path)  # type: ignore[arg-type]
    conn = _worker_conn
    stop_at = time.monotonic() + deadline
    interrupted = []

    def past_deadline() -> bool:
        if time.monotonic() > stop_at:
            interrupted.append(True)
            return True  # SQLite abandons the statement
        return False

    # Checked every million SQLite instructions (a few ms): often enough for the deadline.
    conn.set_progress_handler(past_deadline, 1_000_000)
    try:
        return fn(conn, *args)
    except sqlite3.OperationalError:
        if interrupted:
            raise QueryTimeout(f"query ran longer than {deadline:g} s") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)
        if conn.in_transaction:  # a failed read must not pin an old snapshot
            conn.execute("ROLLBACK")


class Readers:
    """Two small pools of reader processes: one yielding to ingest, one of normal priority."""

    def __init__(self, path: Path | str, processes: int = READER_PROCESSES,
                 ingest_busy: Callable[[], bool] = lambda: True) -> None:
        self.path = str(Path(path).absolute())
        self.processes = processes
        self.ingest_busy = ingest_busy
        self._pools: dict[bool, ProcessPoolExecutor] = {}
        self.queries = 0
        self.timeouts = 0

    def _pool(self, yielding: bool) -> ProcessPoolExecutor:
        pool = self._pools.get(yielding)
        if pool is None:
            # spawn, not fork: the daemon has threads, and a forked copy of them is unsafe.
            pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.path, READER_NICENESS if yielding else 0),
            )
            self._pools[yielding] = pool
        return pool

    async def run(self, fn: Callable[..., Any], *args: Any,
                  deadline: float = DEFAULT_DEADLINE) -> Any:
        """Run ``fn(conn, *args)`` in a reader process and return its result."""
        loop = asyncio.get_running_loop()
        yielding = self.ingest_busy()
        self.queries += 1
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(
                    self._pool(yielding), _run_job, fn, args, deadline
                )
            except QueryTimeout:
                self.timeouts += 1
                raise
            except BrokenProcessPool:  # a reader died (killed, out of memory): start afresh
                logger.warning("a reader process died; starting new ones")
                self._pools.pop(yielding).shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise

    def close(self) -> None:
        """Wait for reads in flight, then stop the reader processes. Idempotent."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
