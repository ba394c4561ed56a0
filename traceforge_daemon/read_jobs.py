"""The reads the HTTP API asks of the reader processes.

Each job is a top-level function ``job(conn, *args)`` so it can be sent to a reader
process; it runs the query and encodes the response there, and returns the body as
bytes (or None for an unknown id), so the daemon's own process only copies bytes.
"""

from __future__ import annotations

import sqlite3
from typing import Optional

from . import rows
from .compare import compare_runs
from .params import encode_cursor
from .runs_query import RunFilter, list_runs, run_detail
from .steps_query import StepFilter, get_step, search


def page_body(key: str, items: list, next_cursor, limit: int) -> bytes:
    """One page of a paged list: the items, the cursor for the next page (or null), the limit."""
    return rows.encode({
        key: items,
        "next_cursor": None if next_cursor is None else encode_cursor(*next_cursor),
        "limit": limit,
    })


def runs_page(conn: sqlite3.Connection, run_filter: RunFilter) -> bytes:
    runs, next_cursor = list_runs(conn, run_filter)
    return page_body("runs", runs, next_cursor, run_filter.limit)


def run_detail_body(conn: sqlite3.Connection, run_id: str, payloads: bool) -> Optional[bytes]:
    found = run_detail(conn, run_id, payloads)
    return None if found is None else rows.encode(found)


def compare_body(conn: sqlite3.Connection, run_id_a: str, run_id_b: str) -> bytes:
    return rows.encode(compare_runs(conn, run_id_a, run_id_b))


def step_body(conn: sqlite3.Connection, step_id: str) -> Optional[bytes]:
    step = get_step(conn, step_id)
    return None if step is None else rows.encode(step)


def search_page(conn: sqlite3.Connection, step_filter: StepFilter) -> bytes:
    steps, next_cursor = search(conn, step_filter)
    return page_body("steps", steps, next_cursor, step_filter.limit)
