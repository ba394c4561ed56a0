"""Writes the daemon makes itself, beside the protocol's events, and how the writer
applies them.

They travel to the single writer like a client's events (``Store.submit`` of a
``WriteBatch``), so they commit in the same transactions, in the same order, and their
submitter is told once they are durable. None of them is ever on the wire.

- ``CursorWrite``: how far a forwarder has delivered the log of ended steps
  (``step_commits``, schema version 3, kept by ``EndLog``) to an OTLP endpoint;
- ``RunNamed``: the root span of an OpenTelemetry trace has arrived, and names the run
  its earlier spans made provisionally.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec


class CursorWrite(msgspec.Struct, gc=False):
    """A forwarder's cursor for ``endpoint``. ``create`` makes it if it is missing,
    starting at the log's current end; otherwise it is updated: ``sent_seq`` (every
    logged step up to it was accepted), ``sending_seq`` (a batch up to it is about to be
    sent) and ``spans`` accepted since the previous write. Log rows every cursor has
    passed are deleted in the same transaction."""

    endpoint: str
    sent_seq: int = 0
    sending_seq: int = 0
    spans: int = 0
    create: bool = False


class RunNamed(msgspec.Struct, gc=False):
    """The run's name and start come from this, not from the run's first row."""

    run_id: str
    name: str
    start_ns: int


LOG_END_SQL = "SELECT COALESCE(MAX(seq), 0) FROM step_commits"
"""The seq of the last ended step ever logged. Pruning never deletes the newest row, so
a seq is never given twice."""

CREATE_CURSOR = f"""
INSERT INTO forward_cursors (endpoint, sent_seq, sending_seq, created_at, updated_at)
VALUES (?1, ({LOG_END_SQL}), ({LOG_END_SQL}), ?2, ?2)
ON CONFLICT(endpoint) DO NOTHING
"""

UPDATE_CURSOR = """
UPDATE forward_cursors SET sent_seq = MAX(sent_seq, ?2), sending_seq = ?3,
    spans_sent = spans_sent + ?4, updated_at = ?5
WHERE endpoint = ?1
"""

PRUNE_LOG = """
DELETE FROM step_commits WHERE seq < (SELECT MIN(sent_seq) FROM forward_cursors)
"""

NAME_RUN = """
UPDATE runs SET run_name = ?2, started_at = MIN(started_at, ?3) WHERE run_id = ?1
"""


LOG_ENDS = """
INSERT INTO step_commits (step_id, committed_at)
SELECT ids.value, ?2 FROM json_each(?1) AS ids
WHERE NOT EXISTS (SELECT 1 FROM steps WHERE step_id = ids.value AND status != 'running')
"""
"""Log the steps of a transaction's ends, in order, except those already ended: a resent
end is not forwarded twice. Run before the ends are written. One statement over a JSON
array rather than executemany: the loop stays in SQLite."""

_encode = msgspec.json.Encoder().encode


class EndLog:
    """Whether the writer logs ended steps: while any forwarder cursor exists."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        (self.on,) = conn.execute("SELECT EXISTS (SELECT 1 FROM forward_cursors)").fetchone()

    def log(self, conn: sqlite3.Connection, step_ids: list[str]) -> None:
        if self.on and step_ids:
            conn.execute(LOG_ENDS, (_encode(step_ids), time.time()))


def apply(conn: sqlite3.Connection, cursors: list[CursorWrite], names: list[RunNamed],
          now: float, end_log: "EndLog | None" = None) -> None:
    """Write these inside the writer's transaction, after the protocol's events. A new
    cursor turns ``end_log`` on from the next transaction."""
    if names:
        conn.executemany(NAME_RUN, [(n.run_id, n.name, n.start_ns / 1e9) for n in names])
    if cursors:
        for cursor in cursors:
            if cursor.create:
                conn.execute(CREATE_CURSOR, (cursor.endpoint, now))
                if end_log is not None:
                    end_log.on = True
            else:
                conn.execute(UPDATE_CURSOR, (cursor.endpoint, cursor.sent_seq,
                                             cursor.sending_seq, cursor.spans, now))
        conn.execute(PRUNE_LOG)
