"""The single SQLite writer: one thread, one connection, batched transactions.

Connections put decoded batches on a queue; this thread takes everything available (up
to MAX_EVENTS_PER_TRANSACTION events or MAX_BYTES_PER_TRANSACTION bytes of frames),
applies it in one ``BEGIN IMMEDIATE ... COMMIT`` (``upserts.apply``), and only then
reports the batches back to the event loop, which acks them. While a commit runs, the
next batches pile up, so transactions grow with load on their own.

One batch never stops the others. When a transaction of several batches fails because of
what one of them holds (a value SQLite refuses), each batch is tried again on its own, so
only the bad one is refused, for good (``storage_rejected``); when it fails because of the
storage (full disk, I/O error), every batch in it gets a retryable ``storage_error`` and
the guard (``guard.py``) holds writes back until the cause is gone. Any exception that
escapes the loop anyway ends the thread, and the Store is told (``on_died``) so it can
fail what was in hand and start a new writer.

Between batches the thread also runs ``WriterJob``s (retention deletes, marking the steps
of vanished processes incomplete), each in short transactions: a job that has more to do
goes to the back of the queue, so the batches that arrived meanwhile are written first.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import daemon_events, schema
from . import faults as fault_switch
from .checkpointer import TRUNCATE, Checkpointer
from .guard import Problem, StorageGuard, classify, describe
from .upserts import apply

logger = logging.getLogger("traceforge.daemon")

__all__ = ["MAX_EVENTS_PER_TRANSACTION", "WriteBatch", "Writer", "WriterJob", "apply",
           "open_writer_connection"]

MAX_EVENTS_PER_TRANSACTION = 5000
MAX_BYTES_PER_TRANSACTION = 8 * 1024 * 1024
"""Frame bytes one transaction takes at most (beyond one batch): bounds what a checkpoint
must copy out of the WAL after a commit, see ``guard.DISK_RESERVE_BYTES``."""
SIZE_REFRESH_SECONDS = 1.0
"""How often, under load, the writer re-reads the database's page counts for health; it
also re-reads them after any commit that leaves its queue empty, so they are current once
ingest pauses."""

WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # an ack survives a daemon crash; see protocol.md
    "PRAGMA busy_timeout=5000",
    "PRAGMA cache_size=-131072",  # 128 MiB: keeps the hot index pages of a big database
    "PRAGMA temp_store=MEMORY",
    "PRAGMA journal_size_limit=67108864",
    "PRAGMA foreign_keys=OFF",
)


@dataclass
class WriteBatch:
    """Events from one frame of one connection, plus where to send the ack. The drop
    counts the frame carried are written in the same transaction as its events."""

    origin: object  # the connection; opaque to the writer
    seq: int
    events: list
    pid: int
    host: str
    session: str = ""
    dropped: dict = field(default_factory=dict)
    size: int = 0
    """The frame's length in bytes: what the bounds on memory count."""


@dataclass
class WriterStats:
    """Kept by the Store across writer restarts."""

    events_committed: int = 0
    transactions: int = 0
    storage_errors: int = 0
    batches_rejected: int = 0
    drops_reported: dict = field(default_factory=dict)
    page_size: int = 4096
    page_count: int = 0
    freelist_count: int = 0


class WriterJob:
    """Work for the writer thread other than a batch, done a short transaction at a time."""

    def step(self, conn: sqlite3.Connection) -> bool:
        """Do one short piece (begin and commit its own transaction); True when all done."""
        raise NotImplementedError

    def changes(self) -> list:
        """Rows the last step changed, as commit-listener items (``.events``); [] if none."""
        return []

    def settle(self, error: Optional[BaseException]) -> None:
        """On the writer's thread, once: the job finished (None) or failed."""


_SHUTDOWN = object()


def open_writer_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in WRITER_PRAGMAS:
            conn.execute(pragma)
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        if mode.lower() != "wal":
            raise schema.SchemaError(
                f"could not put {path} in WAL mode (got {mode!r}); is it on a network "
                "filesystem?"
            )
        schema.migrate(conn)
        conn.execute("PRAGMA optimize=0x10002")
    except BaseException:
        conn.close()
        raise
    return conn


class Writer:
    """Owns the only write connection. ``submit`` is called from the event loop."""

    def __init__(
        self,
        path: str,
        checkpointer: Checkpointer,
        on_settled: Callable[[list, list], None],
        on_died: Callable[[BaseException, list], None],
        stats: Optional[WriterStats] = None,
    ) -> None:
        self.path = path
        self.conn = open_writer_connection(path)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it
        self.end_log = daemon_events.EndLog(self.conn)
        self.faults = fault_switch.ACTIVE
        if self.faults is not None and self.faults.max_page_count:
            self.conn.execute(f"PRAGMA max_page_count={int(self.faults.max_page_count)}")
        self.checkpointer = checkpointer
        self.guard = StorageGuard(path, self._empty_wal)
        self.queue: "queue.Queue[object]" = queue.Queue()
        self.on_settled = on_settled
        """(committed items, [(item, Problem)]) after each transaction, from this thread."""
        self.on_died = on_died
        self.stats = stats if stats is not None else WriterStats()
        self.in_hand: list = []
        self._sizes_at = 0.0
        self._refresh_sizes()
        self.guard._try_empty_wal()  # a WAL left by a crash goes back before new writes
        self.thread = threading.Thread(target=self._run, name="traceforge-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def submit(self, item: object) -> None:
        """A WriteBatch or a WriterJob."""
        self.queue.put(item)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything already submitted, then close the connection."""
        self.queue.put(_SHUTDOWN)
        self.thread.join(timeout)

    def take_queued(self) -> list:
        """Everything still queued (after the thread has ended)."""
        left = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return [item for item in left if item is not _SHUTDOWN]
            left.append(item)

    # ---- the thread ----

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug: the Store fails what was in hand, starts anew
            self.on_died(exc, self.in_hand)
            return
        for item in self.take_queued():  # submitted after the stop: nothing should be
            if isinstance(item, WriterJob):
                item.settle(RuntimeError("the writer stopped"))
        try:
            self.conn.execute("PRAGMA optimize")
            self.conn.close()
        except sqlite3.Error:
            logger.exception("closing the database failed")

    def _serve(self) -> None:
        while True:
            items, job, stopping = self._take()
            self.in_hand = items
            if self.faults is not None:
                self.faults.check_crash(items)
            if items:
                self._write(items)
            self.in_hand = []
            if job is not None:
                self._run_job(job)
            if stopping:
                return

    def _take(self) -> tuple[list, Optional[WriterJob], bool]:
        """(batches for one transaction, a job to run after them, whether to stop)."""
        items: list[WriteBatch] = []
        count = size = 0
        item = self.queue.get()
        while True:
            if item is _SHUTDOWN:  # submitted last: everything before it is in items
                return items, None, True
            if isinstance(item, WriterJob):
                return items, item, False
            items.append(item)  # type: ignore[arg-type]
            count += len(item.events)  # type: ignore[attr-defined]
            size += item.size  # type: ignore[attr-defined]
            if count >= MAX_EVENTS_PER_TRANSACTION or size >= MAX_BYTES_PER_TRANSACTION:
                return items, None, False
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return items, None, False

    def _write(self, items: list) -> None:
        problem = self.guard.check()
        if problem is not None:
            self._report_failure(items, problem, known=True)
            self._settle([], [(item, problem) for item in items])
            return
        try:
            self._transaction(items)
        except Exception as exc:
            problem = classify(exc)
            if problem.retryable or len(items) == 1:
                self._report_failure(items, problem)
                self._settle([], [(item, problem) for item in items])
                return
            self._one_by_one(items)
            return
        self._committed(items)

    def _one_by_one(self, items: list) -> None:
        """A transaction of several batches failed because of its data: find the bad ones."""
        committed, failed = [], []
        for item in items:
            try:
                self._transaction([item])
            except Exception as exc:
                problem = classify(exc)
                self._report_failure([item], problem)
                failed.append((item, problem))
            else:
                committed.append(item)
        self._count(committed)
        if committed:
            self.guard.committed()
        self._refresh_sizes(force=self.queue.empty())
        self._settle(committed, failed)

    def _transaction(self, items: list) -> None:
        conn = self.conn
        self.checkpointer.make_room(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.faults is not None:
                self.faults.check_apply(items)
            apply(conn, items, self.end_log)
            conn.execute("COMMIT")
        except BaseException:
            # After SQLITE_FULL or an I/O error SQLite may have rolled back already; a
            # ROLLBACK then fails too, and its error must not hide the real one.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    logger.warning("rollback after a failed transaction failed: %s",
                                   describe(exc))
            raise
        self.checkpointer.nudge()
        self.stats.transactions += 1

    def _committed(self, items: list) -> None:
        self._count(items)
        self.guard.committed()
        self._refresh_sizes(force=self.queue.empty())
        self._settle(items, [])

    def _settle(self, committed: list, failed: list) -> None:
        """Report the outcome; from here the batches are no longer this thread's to fail."""
        self.in_hand = []
        self.on_settled(committed, failed)

    def _count(self, items: list) -> None:
        stats = self.stats
        total = stats.drops_reported
        for item in items:
            stats.events_committed += len(item.events)
            for reason, count in item.dropped.items():
                if count:
                    total[reason] = total.get(reason, 0) + count

    def _report_failure(self, items: list, problem: Problem, known: bool = False) -> None:
        self.stats.storage_errors += 1
        if not known:
            self.guard.failed(problem)
        if problem.retryable:
            # guard.failed has logged the cause once; each transaction only at DEBUG
            logger.debug("%d batches not committed: %s", len(items), problem.message)
            return
        self.stats.batches_rejected += len(items)
        for item in items:
            logger.warning("refused batch %d from pid %s on %s for good: %s", item.seq,
                           item.pid or "?", item.host or "?", problem.message)

    def _run_job(self, job: WriterJob) -> None:
        try:
            done = job.step(self.conn)
        except Exception as exc:
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            logger.warning("%s failed: %s", type(job).__name__, describe(exc))
            job.settle(exc)
            return
        changed = job.changes()
        if changed:
            self._settle(changed, [])
        self.checkpointer.nudge()
        self._refresh_sizes(force=True)
        if done:
            job.settle(None)
        else:
            self.queue.put(job)  # behind the batches that arrived meanwhile

    def _refresh_sizes(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._sizes_at < SIZE_REFRESH_SECONDS:
            return
        self._sizes_at = now
        conn, stats = self.conn, self.stats
        try:
            (stats.page_size,) = conn.execute("PRAGMA page_size").fetchone()
            (stats.page_count,) = conn.execute("PRAGMA page_count").fetchone()
            (stats.freelist_count,) = conn.execute("PRAGMA freelist_count").fetchone()
        except sqlite3.Error as exc:  # only for health: never fail a write over it
            logger.debug("reading the database size failed: %s", describe(exc))

    def _empty_wal(self) -> bool:
        """A TRUNCATE checkpoint on this thread's connection: True if the WAL is empty."""
        busy, _, _ = self.checkpointer.copy(self.conn, TRUNCATE)
        if not busy:
            self.checkpointer.wal_frames = 0
        return not busy
