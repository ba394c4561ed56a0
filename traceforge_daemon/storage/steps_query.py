"""Reads behind the step detail, the replay inputs and the step search.

Search drives every query from one index chosen up front (``INDEXED BY``), so its
cost never depends on what the planner guesses, and a test can hold each filter to
an index search instead of a scan of ``steps``. Results come newest first, and the
chosen indexes all end in ``started_at``, so no filter needs a sort, except
``min_tokens`` when few steps pass it (see ``choose_index``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from . import rows
from .readers import snapshot

TOKEN_PROBE_LIMIT = 10_000
"""When fewer steps than this pass ``min_tokens`` (counted in the token index alone,
under a millisecond), searching reads them through that index and sorts them (about
1.5 us a row); otherwise it walks steps newest first and filters, which finds a page
within ~10,000 rows when matches are that common. Measured on 1,000,000 steps in
bench/RESULTS-query.md. The walk is slow only if the matches all lie far in the past."""


STEP_STATUSES = ("running", "ok", "error", "incomplete")
"""``incomplete``: its process went away without ending it (sweeps.py)."""


@dataclass(frozen=True)
class StepFilter:
    """The step search's filters; every combination is allowed."""

    run_id: Optional[str] = None
    step_name: Optional[str] = None
    has_error: Optional[bool] = None
    status: Optional[str] = None
    min_tokens: Optional[int] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    limit: int = 100
    cursor: Optional[tuple[float, int]] = None
    payloads: bool = True


def choose_index(conn: sqlite3.Connection, f: StepFilter) -> str:
    """The index that drives the search, most selective first.

    Failed steps have partial indexes of their own (by time, run and name), so an
    error search reads failed rows only; so do incomplete ones (by time). A ``min_tokens`` that few steps pass reads
    those few through the token index, whatever else is asked. Otherwise a run or a
    name narrows the walk, and the time index serves the rest.
    """
    if f.status == "incomplete":
        return "idx_steps_incomplete"
    if f.has_error or f.status == "error":
        if f.run_id is not None:
            return "idx_steps_errors_by_run"
        if f.step_name is not None:
            return "idx_steps_errors_by_name"
        return "idx_steps_errors"
    if f.min_tokens is not None:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM steps INDEXED BY idx_steps_tokens "
            "WHERE tokens_input + tokens_output >= ? LIMIT ?)",
            (f.min_tokens, TOKEN_PROBE_LIMIT),
        ).fetchone()
        if count < TOKEN_PROBE_LIMIT:
            return "idx_steps_tokens"
    if f.run_id is not None:
        return "idx_steps_run_id"
    if f.step_name is not None:
        return "idx_steps_name"
    return "idx_steps_started"


def search_sql(f: StepFilter, index: str) -> tuple[str, list]:
    where, params = [], []
    if f.run_id is not None:
        where.append("run_id = ?")
        params.append(f.run_id)
    if f.step_name is not None:
        where.append("step_name = ?")
        params.append(f.step_name)
    if f.has_error is True:
        where.append("status = 'error'")  # a literal, so the partial index applies
    elif f.has_error is False:
        where.append("status != 'error'")
    if f.status is not None:
        if f.status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {f.status!r}")
        where.append(f"status = '{f.status}'")  # a literal, so partial indexes apply
    if f.min_tokens is not None:
        where.append("tokens_input + tokens_output >= ?")
        params.append(f.min_tokens)
    window, window_params = rows.time_window(f.start_time, f.end_time, f.cursor)
    where += window
    params += window_params
    columns = search_columns(f.payloads)
    sql = (
        f"SELECT rowid, {rows.select_list(columns)} FROM steps INDEXED BY {index}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY started_at DESC, rowid DESC LIMIT ?"
    )
    params.append(f.limit + 1)
    return sql, params


def search_columns(payloads: bool) -> tuple[str, ...]:
    if payloads:
        return rows.STEP_FULL_COLUMNS
    return ("run_id",) + rows.STEP_SUMMARY_COLUMNS


def search(conn: sqlite3.Connection, f: StepFilter) -> tuple[list[dict], Optional[tuple]]:
    """Matching steps, newest first, and the cursor of the next page (or None)."""
    with snapshot(conn):
        sql, params = search_sql(f, choose_index(conn, f))
        found = conn.execute(sql, params).fetchall()
    page = found[: f.limit]
    columns = search_columns(f.payloads)
    steps = [rows.step_dict(columns, row[1:]) for row in page]
    next_cursor = None
    if len(found) > f.limit:
        next_cursor = (steps[-1]["started_at"], page[-1][0])
    return steps, next_cursor


def get_step(conn: sqlite3.Connection, step_id: str) -> Optional[dict]:
    """One step with its payloads, its run's name, its children and its replays."""
    with snapshot(conn):
        row = conn.execute(
            f"SELECT {rows.select_list(rows.STEP_FULL_COLUMNS, 's')}, r.run_name "
            "FROM steps AS s LEFT JOIN runs AS r ON r.run_id = s.run_id "
            "WHERE s.step_id = ?",
            (step_id,),
        ).fetchone()
        if row is None:
            return None
        children = conn.execute(
            "SELECT step_id FROM steps INDEXED BY idx_steps_parent "
            "WHERE parent_step_id = ? ORDER BY started_at",
            (step_id,),
        ).fetchall()
        replays = conn.execute(
            "SELECT run_id FROM runs INDEXED BY idx_runs_replay_of_step "
            "WHERE replay_of_step_id = ? ORDER BY started_at",
            (step_id,),
        ).fetchall()
    step = rows.step_dict(rows.STEP_FULL_COLUMNS, row[:-1])
    step["run_name"] = row[-1]
    step["children"] = [child for (child,) in children]
    step["replay_run_ids"] = [run_id for (run_id,) in replays]
    return step


def step_inputs(conn: sqlite3.Connection, step_id: str) -> Optional[dict]:
    """Everything needed to run the step again, as it was recorded."""
    row = conn.execute(
        "SELECT step_id, run_id, step_name, model, input_data, output_data, metadata, "
        "status, error FROM steps WHERE step_id = ?",
        (step_id,),
    ).fetchone()
    if row is None:
        return None
    step_id, run_id, name, model, input_data, output_data, metadata, status, error = row
    input_value = rows.decode_json(input_data)
    return {
        "step_id": step_id,
        "run_id": run_id,
        "step_name": name,
        "input_data": input_value,
        "model": model,
        "parameters": _parameters(rows.decode_json(metadata), input_value),
        "original_output": rows.decode_json(output_data),
        "original_status": status,
        "original_error": error,
    }


def _parameters(metadata, input_value) -> dict:
    """Model settings to replay with: ``metadata["parameters"]`` when the step recorded
    it, else the settings of a recorded LLM request (its keys besides the prompt)."""
    if isinstance(metadata, dict) and isinstance(metadata.get("parameters"), dict):
        return metadata["parameters"]
    if isinstance(input_value, dict) and "messages" in input_value:
        return {key: value for key, value in input_value.items()
                if key not in ("messages", "system", "model")}
    return {}
