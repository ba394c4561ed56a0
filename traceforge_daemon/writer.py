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

from traceforge_client import protocol

from . import schema
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

# A run's row may be written after a child process's failed step was committed (the
# child's connection can beat the parent's): the EXISTS keeps that failure visible.
INSERT_RUN_START = """
INSERT INTO runs (run_id, run_name, started_at, metadata, pid, host, status)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN EXISTS (
    SELECT 1 FROM steps WHERE run_id = ?1 AND status = 'error') THEN 'error' ELSE 'running' END)
ON CONFLICT(run_id) DO NOTHING
"""

UPSERT_RUN_END = """
INSERT INTO runs (run_id, run_name, started_at, ended_at, status, metadata, error, pid, host)
VALUES (?1, ?2, ?3, ?4, CASE WHEN EXISTS (
    SELECT 1 FROM steps WHERE run_id = ?1 AND status = 'error') THEN 'error' ELSE ?5 END,
    ?6, ?7, ?8, ?9)
ON CONFLICT(run_id) DO UPDATE SET
    ended_at = excluded.ended_at,
    status = CASE WHEN runs.status = 'error' THEN 'error' ELSE excluded.status END,
    error = COALESCE(excluded.error, runs.error)
"""

# Only when the failed step really is stored under this run (a step id already taken
# by another run is ignored, and must not fail this one).
MARK_RUN_FAILED = """
UPDATE runs SET status = 'error'
WHERE run_id = ?1 AND status != 'error'
  AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?2 AND run_id = ?1 AND status = 'error')
"""

INSERT_STEP_START = """
INSERT INTO steps (step_id, run_id, parent_step_id, step_name, model, input_data,
                   metadata, started_at, status, pid, host)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)
ON CONFLICT(step_id) DO UPDATE SET
    input_data = COALESCE(steps.input_data, excluded.input_data),
    metadata = COALESCE(steps.metadata, excluded.metadata),
    model = COALESCE(steps.model, excluded.model)
WHERE steps.run_id = excluded.run_id
"""

UPSERT_STEP_END = """
INSERT INTO steps (step_id, run_id, parent_step_id, step_name, model, input_data,
                   output_data, tokens_input, tokens_output, tokens_cache_read,
                   tokens_cache_write, cost_usd, latency_ms, started_at, ended_at, status,
                   error, error_type, traceback, metadata, pid, host)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        on_committed: Callable[[list], None],
        on_failed: Callable[[list, str], None],
    ) -> None:
        self.path = path
        self.conn = open_writer_connection(path)
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it
        self.checkpointer = Checkpointer(path)
        self.queue: "queue.Queue[object]" = queue.Queue()
        self.on_committed = on_committed
        self.on_failed = on_failed
        self.stats = WriterStats()
        self.thread = threading.Thread(target=self._run, name="traceforge-writer", daemon=True)

    def start(self) -> None:
        self.checkpointer.start()
        self.thread.start()

    def submit(self, batch: WriteBatch) -> None:
        self.queue.put(batch)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything already submitted, then close the connection."""
        self.queue.put(_SHUTDOWN)
        self.thread.join(timeout)
        self.checkpointer.stop(timeout)

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
                committed = apply(self.conn, items)
                self.conn.execute("COMMIT")
                self.checkpointer.nudge()
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.stats.storage_errors += 1
            logger.error("storage error, %d batches not committed: %s", len(items), exc)
            self.on_failed(items, str(exc))
            return
        self.stats.events_committed += committed
        self.stats.transactions += 1
        total = self.stats.drops_reported
        for item in items:
            for reason, count in item.dropped.items():
                if count:
                    total[reason] = total.get(reason, 0) + count
        self.on_committed(items)


def apply(conn: sqlite3.Connection, items: list) -> int:
    """Write ``items`` inside the caller's transaction; return the events applied."""
    run_starts, run_ends, failed_steps, drops = [], [], [], []
    starts: dict[str, tuple] = {}
    ends: dict[str, tuple] = {}
    applied = 0
    now = time.time()
    StepStart, StepEnd, RunStart, RunEnd = (
        protocol.StepStart, protocol.StepEnd, protocol.RunStart, protocol.RunEnd,
    )
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
                run_starts.append((
                    event.run_id, event.name, event.start_ns / 1e9, event.metadata_json,
                    pid, host,
                ))
            elif kind is RunEnd:
                run_ends.append((
                    event.run_id, event.name, event.start_ns / 1e9, event.end_ns / 1e9,
                    event.status, event.metadata_json, event.error, pid, host,
                ))
    if run_starts:
        conn.executemany(INSERT_RUN_START, run_starts)
    if starts:
        rows = [
            (e.step_id, e.run_id, e.parent_step_id, e.name, e.model, e.input_json,
             e.metadata_json, e.start_ns / 1e9, pid, host)
            for step_id, (e, pid, host) in starts.items()
            if step_id not in ends
        ]
        if rows:
            conn.executemany(INSERT_STEP_START, rows)
    if ends:
        rows = []
        for step_id, (e, pid, host) in ends.items():
            start = starts.get(step_id)
            rows.append((
                step_id, e.run_id, e.parent_step_id, e.name,
                e.model if e.model is not None or not start else start[0].model,
                start[0].input_json if start else None,
                e.output_json, e.tokens_input, e.tokens_output, e.tokens_cache_read,
                e.tokens_cache_write, e.cost_usd, (e.end_ns - e.start_ns) / 1e6,
                e.start_ns / 1e9, e.end_ns / 1e9, e.status,
                _error_text(e.error_type, e.error_message) if e.status == "error" else None,
                e.error_type, e.traceback,
                e.metadata_json if e.metadata_json is not None
                else (start[0].metadata_json if start else None),
                pid, host,
            ))
        conn.executemany(UPSERT_STEP_END, rows)
    if run_ends:
        conn.executemany(UPSERT_RUN_END, run_ends)
    if failed_steps:
        conn.executemany(MARK_RUN_FAILED, failed_steps)
    if drops:
        conn.executemany(INSERT_DROPS, drops)
    return applied


def _error_text(error_type: Optional[str], message: Optional[str]) -> str:
    """The seed's one-line error string, "Type: message", from whichever parts exist."""
    if error_type and message:
        return f"{error_type}: {message}"
    return error_type or message or "error"
