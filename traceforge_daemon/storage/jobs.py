"""The reads the HTTP API asks of the reader processes.

Each job is a top-level function ``job(conn, *args)`` so it can be sent to a reader
process; it runs the query and encodes the response there, and returns the body as
bytes (or None for an unknown id), so the daemon's own process only copies bytes.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

from . import export, rows
from .compare import compare_runs
from .runs_query import RunFilter, list_runs, run_columns, run_detail
from .stats_query import StatsFilter, step_stats
from .steps_query import StepFilter, get_step, search, step_inputs


def page_body(key: str, items: list, next_cursor, limit: int) -> bytes:
    """One page of a paged list: the items, the cursor for the next page (or null), the limit."""
    return rows.encode({
        key: items,
        "next_cursor": None if next_cursor is None else rows.encode_cursor(*next_cursor),
        "limit": limit,
    })


def runs_page(conn: sqlite3.Connection, run_filter: RunFilter) -> bytes:
    runs, next_cursor = list_runs(conn, run_filter)
    return page_body("runs", runs, next_cursor, run_filter.limit)


def run_detail_body(conn: sqlite3.Connection, run_id: str, payloads: bool) -> Optional[bytes]:
    found = run_detail(conn, run_id, payloads)
    return None if found is None else rows.encode(found)


def run_steps_body(conn: sqlite3.Connection, run_id: str) -> Optional[bytes]:
    found = run_columns(conn, run_id)
    return None if found is None else rows.encode(found)


def compare_body(conn: sqlite3.Connection, run_id_a: str, run_id_b: str) -> bytes:
    return rows.encode(compare_runs(conn, run_id_a, run_id_b))


def step_body(conn: sqlite3.Connection, step_id: str) -> Optional[bytes]:
    step = get_step(conn, step_id)
    return None if step is None else rows.encode(step)


def search_page(conn: sqlite3.Connection, step_filter: StepFilter) -> bytes:
    steps, next_cursor = search(conn, step_filter)
    return page_body("steps", steps, next_cursor, step_filter.limit)


def step_inputs_body(conn: sqlite3.Connection, step_id: str) -> Optional[bytes]:
    inputs = step_inputs(conn, step_id)
    return None if inputs is None else rows.encode(inputs)


def replay_inputs_body(conn: sqlite3.Connection, step_id: str, override: Any) -> Optional[bytes]:
    """The step's inputs with ``override`` (when not None) in place of its input."""
    inputs = step_inputs(conn, step_id)
    if inputs is None:
        return None
    inputs["original_input"] = inputs["input_data"]
    inputs["overridden"] = override is not None
    if override is not None:
        inputs["input_data"] = override
    return rows.encode(inputs)


def stats_body(conn: sqlite3.Connection, stats_filter: StatsFilter, daemon_side: dict) -> bytes:
    """Per step name statistics, with counts the daemon's process keeps (``daemon_side``:
    live-event and reader figures) added at the top level."""
    return rows.encode({**step_stats(conn, stats_filter), **daemon_side})


def export_chunks(conn: sqlite3.Connection, run_id: str) -> Optional[list[bytes]]:
    return export.export_run(conn, run_id)


def export_page(conn: sqlite3.Connection, run_filter: RunFilter,
                ) -> tuple[bytes, Optional[tuple[float, int]], int]:
    """A page of a range export in the flat format (see ``export.run_page``)."""
    return export.run_page(conn, run_filter, export.flat_run)


def count_steps(conn: sqlite3.Connection, run_filter: RunFilter) -> int:
    return export.count_steps(conn, run_filter, ended_only=False)
