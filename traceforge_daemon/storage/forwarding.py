"""Reads behind forwarding: a forwarder's cursor, and the ended steps after it.

``step_commits`` (schema version 3) numbers ended steps in the order their end was
committed; ``forward_cursors`` keeps how far each endpoint has got. The writes that
move a cursor are ``daemon_events.CursorWrite``; these reads run in reader processes.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple, Optional

from . import rows
from .daemon_events import LOG_END_SQL
from .export import SPAN_COLUMNS as STEP_COLUMNS
from .readers import snapshot


class Cursor(NamedTuple):
    sent_seq: int
    sending_seq: int
    spans_sent: int


class Backlog(NamedTuple):
    """Ended steps after a cursor, oldest first, and where the log stands."""

    steps: list[tuple[int, dict]]
    """(seq, step as a dict of STEP_COLUMNS, payload columns still JSON text)"""
    through: int
    """The seq these steps cover the log through: delivering them moves a cursor here."""
    log_end: int
    oldest_at: Optional[float]
    """When the first step after the cursor was committed; None when there is none."""


def cursor(conn: sqlite3.Connection, endpoint: str) -> Optional[Cursor]:
    row = conn.execute(
        "SELECT sent_seq, sending_seq, spans_sent FROM forward_cursors WHERE endpoint = ?",
        (endpoint,),
    ).fetchone()
    return None if row is None else Cursor(*row)


def count_between(conn: sqlite3.Connection, after: int, upto: int) -> int:
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM step_commits WHERE seq > ? AND seq <= ?", (after, upto)
    ).fetchone()
    return count


def backlog(conn: sqlite3.Connection, after: int, limit: int,
            upto: Optional[int] = None) -> Backlog:
    """Up to ``limit`` ended steps logged after ``after`` (and at most ``upto``)."""
    with snapshot(conn):
        (log_end,) = conn.execute(LOG_END_SQL).fetchone()
        oldest = conn.execute(
            "SELECT committed_at FROM step_commits WHERE seq > ? ORDER BY seq LIMIT 1", (after,)
        ).fetchone()
        last = log_end if upto is None else min(upto, log_end)
        found = conn.execute(
            f"SELECT c.seq, {rows.select_list(STEP_COLUMNS, 's')} FROM step_commits c "
            "JOIN steps s ON s.step_id = c.step_id "
            "WHERE c.seq > ? AND c.seq <= ? ORDER BY c.seq LIMIT ?",
            (after, last, limit),
        ).fetchall()
    steps = [(row[0], dict(zip(STEP_COLUMNS, row[1:]))) for row in found]
    # Fewer than asked for: the whole range was read (a logged step no longer stored
    # is stepped over, not read again and again).
    through = steps[-1][0] if limit and len(steps) == limit else max(last, after)
    return Backlog(steps, through, log_end, None if oldest is None else oldest[0])
