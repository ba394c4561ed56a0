"""The single SQLite writer: one thread, one connection, batched transactions.

Connections put decoded batches on a queue; this thread takes everything available
(up to MAX_EVENTS_PER_TRANSACTION), applies it in one ``BEGIN IMMEDIATE ... COMMIT``,
and only then reports the batches back to the event loop, which acks them. While a
commit runs, the next batches pile up, so transactions grow with load on their own.

Every write is an idempotent upsert keyed on the run or step id, so a batch resent
after a reconnect changes nothing, and a step's end may arrive before its start.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from traceforge_protocol import wire

from . import daemon_events, records, schema
from .checkpointer import Checkpointer

logger = logging.getLogger("traceforge.daemon")

MAX_EVENTS_PER_TRANSACTION = 5000

WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # an ack survives a daemon crash; see protocol.md
    "PRAGMA busy_timeout=5000",
    "PRAGMA cache_size=-131072",  # 128 MiB: keeps the hot index pages of a big database
    "PRAGMA temp_store=MEMORY",
    "PRAGMA journal_size_limit=67108864",
    "PRAGMA foreign_keys=OFF",
)

def _columns(names: tuple) -> str:
    return ", ".join(names)


def _marks(names: tuple) -> str:
    return ", ".join("?" * len(names))


# A run's row may be written after a child process's failed step was committed (the
# child's connection can beat the parent's): the EXISTS keeps that failure visible.
INSERT_RUN_START = f"""
INSERT INTO runs ({_columns(records.RUN_START_COLUMNS)}, status)
VALUES ({_marks(records.RUN_START_COLUMNS)}, CASE WHEN EXISTS (
    SELECT 1 FROM steps WHERE run_id = ?1 AND status = 'error') THEN 'error' ELSE 'running' END)
ON CONFLICT(run_id) DO NOTHING
"""

_RUN_END_VALUES = ", ".join(
    "CASE WHEN EXISTS (SELECT 1 FROM steps WHERE run_id = ?1 AND status = 'error') "
    f"THEN 'error' ELSE ?{position} END" if column == "status" else f"?{position}"
    for position, column in enumerate(records.RUN_END_COLUMNS, start=1)
)
UPSERT_RUN_END = f"""
INSERT INTO runs ({_columns(records.RUN_END_COLUMNS)})
VALUES ({_RUN_END_VALUES})
ON CONFLICT(run_id) DO UPDATE SET
    ended_at = excluded.ended_at,
    status = CASE WHEN runs.status = 'error' THEN 'error' ELSE excluded.status END,
    error = COALESCE(excluded.error, runs.error)
"""
assert records.RUN_START_COLUMNS[0] == records.RUN_END_COLUMNS[0] == "run_id"  # ?1 above

# Only when the failed step really is stored under this run (a step id already taken
# by another run is ignored, and must not fail this one).
MARK_RUN_FAILED = """
UPDATE runs SET status = 'error'
WHERE run_id = ?1 AND status != 'error'
  AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?2 AND run_id = ?1 AND status = 'error')
"""

INSERT_STEP_START = f"""
INSERT INTO steps ({_columns(records.STEP_START_COLUMNS)}, status)
VALUES ({_marks(records.STEP_START_COLUMNS)}, 'running')
ON CONFLICT(step_id) DO UPDATE SET
    input_data = COALESCE(steps.input_data, excluded.input_data),
    metadata = COALESCE(steps.metadata, excluded.metadata),
    model = COALESCE(steps.model, excluded.model)
WHERE steps.run_id = excluded.run_id
"""

UPSERT_STEP_END = f"""
INSERT INTO steps ({_columns(records.STEP_END_COLUMNS)})
VALUES ({_marks(records.STEP_END_COLUMNS)})
ON CONFLICT(step_id) DO UPDATE SET
    model = COALESCE(excluded.model, steps.model),
    input_data = COALESCE(steps.input_data, excluded.input_data),
    output_data = excluded.output_data,
    tokens_input = excluded.tokens_input,
    tokens_output = excluded.tokens_output,
    tokens_cache_read = excluded.tokens_cache_read,
    tokens_cache_write = excluded.tokens_cache_write,
    cost_usd = excluded.cost_usd,
    latency_ms = excluded.latency_ms,
    ended_at = excluded.ended_at,
    status = excluded.status,
    error = excluded.error,
    error_type = excluded.error_type,
    traceback = excluded.traceback,
    metadata = COALESCE(excluded.metadata, steps.metadata)
WHERE steps.run_id = excluded.run_id
"""

INSERT_DROPS = """
INSERT INTO client_drops (session, pid, host, reason, count, reported_at)
VALUES (?, ?, ?, ?, ?, ?)
"""


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


@dataclass
class WriterStats:
    events_committed: int = 0
    transactions: int = 0
    storage_errors: int = 0
    drops_reported: dict = field(default_factory=dict)


_SHUTDOWN = object()


def open_writer_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in WRITER_PRAGMAS:
        conn.execute(pragma)
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if mode.lower() != "wal":
        raise schema.SchemaError(
            f"could not put {path} in WAL mode (got {mode!r}); is it on a network filesystem?"
        )
    schema.migrate(conn)
    conn.execute("PRAGMA optimize=0x10002")
    return conn


class Writer:
    """Owns the only write connection. ``submit`` is called from the event loop."""

    def __init__(
        self,
        path: str,
        checkpointer: Checkpointer,
        on_committed: Callable[[list], None],
        on_failed: Callable[[list, str], None],
    ) -> None:
        self.path = path
        self.conn = open_writer_connection(path)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it
        self.end_log = daemon_events.EndLog(self.conn)
        self.checkpointer = checkpointer
        self.queue: "queue.Queue[object]" = queue.Queue()
        self.on_committed = on_committed
        self.on_failed = on_failed
        self.stats = WriterStats()
        self.thread = threading.Thread(target=self._run, name="traceforge-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, batch: WriteBatch) -> None:
        self.queue.put(batch)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything already submitted, then close the connection."""
        self.queue.put(_SHUTDOWN)
        self.thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items: list[WriteBatch] = []
            count = 0
            item = self.queue.get()
            while True:
                if item is _SHUTDOWN:  # submitted last: everything before it is in items
                    stopping = True
                    break
                items.append(item)
                count += len(item.events)
                if count >= MAX_EVENTS_PER_TRANSACTION:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if items:
                self._commit(items)
        try:
            self.conn.execute("PRAGMA optimize")
            self.conn.close()
        except sqlite3.Error:
            logger.exception("closing the database failed")

    def _commit(self, items: list) -> None:
        self.checkpointer.make_room(self.conn)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                committed = apply(self.conn, items, self.end_log)
                self.conn.execute("COMMIT")
                self.checkpointer.nudge()
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            # Whatever went wrong, this thread must live: it is the only writer, and every
            # connection's acks wait on it. The decoder keeps SQLite's own limits out (an
            # integer beyond 64 bits raised OverflowError here once), so anything but an
            # sqlite3.Error is a bug in TraceForge, logged with its traceback.
            self.stats.storage_errors += 1
            if isinstance(exc, sqlite3.Error):
                logger.error("storage error, %d batches not committed: %s", len(items), exc)
            else:
                logger.exception("bug: %d batches not committed", len(items))
            self.on_failed(items, str(exc) or type(exc).__name__)
            return
        self.stats.events_committed += committed
        self.stats.transactions += 1
        total = self.stats.drops_reported
        for item in items:
            for reason, count in item.dropped.items():
                if count:
                    total[reason] = total.get(reason, 0) + count
        self.on_committed(items)


def apply(conn: sqlite3.Connection, items: list,
          end_log: Optional[daemon_events.EndLog] = None) -> int:
    """Write ``items`` inside the caller's transaction; return the events applied. With
    ``end_log`` on, the steps ending here are logged for forwarding first."""
    run_starts, run_ends, failed_steps, drops = [], [], [], []
    cursors: list[daemon_events.CursorWrite] = []
    names: list[daemon_events.RunNamed] = []
    starts: dict[str, tuple] = {}
    ends: dict[str, tuple] = {}
    applied = 0
    now = time.time()
    StepStart, StepEnd, RunStart, RunEnd = wire.StepStart, wire.StepEnd, wire.RunStart, wire.RunEnd
    for item in items:
        pid, host = item.pid, item.host
        for reason, count in item.dropped.items():
            if count:
                drops.append((item.session, pid, host, reason, count, now))
        applied += len(item.events)
        for event in item.events:
            kind = type(event)
            if kind is StepEnd:
                ends[event.step_id] = (event, pid, host)
                if event.status == "error":
                    failed_steps.append((event.run_id, event.step_id))
            elif kind is StepStart:
                starts[event.step_id] = (event, pid, host)
            elif kind is RunStart:
                run_starts.append(records.run_start_row(event, pid, host))
            elif kind is RunEnd:
                run_ends.append(records.run_end_row(event, pid, host))
            elif kind is daemon_events.CursorWrite:
                cursors.append(event)
            elif kind is daemon_events.RunNamed:
                names.append(event)
    if run_starts:
        conn.executemany(INSERT_RUN_START, run_starts)
    if starts:
        start_rows = [
            records.step_start_row(event, pid, host)
            for step_id, (event, pid, host) in starts.items() if step_id not in ends
        ]
        if start_rows:
            conn.executemany(INSERT_STEP_START, start_rows)
    if ends:
        if end_log is not None:
            end_log.log(conn, list(ends))
        end_rows = []
        for step_id, (event, pid, host) in ends.items():
            start = starts.get(step_id)
            end_rows.append(records.step_end_row(
                event, start[0] if start is not None else None, pid, host))
        conn.executemany(UPSERT_STEP_END, end_rows)
    if run_ends:
        conn.executemany(UPSERT_RUN_END, run_ends)
    if failed_steps:
        conn.executemany(MARK_RUN_FAILED, failed_steps)
    if drops:
        conn.executemany(INSERT_DROPS, drops)
    if cursors or names:
        daemon_events.apply(conn, cursors, names, now, end_log)
    return applied
