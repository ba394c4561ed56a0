"""Reads behind the run list and the run detail, run on a reader connection.

The run list pages over ``runs`` by start time (an index walk, newest first) and then
totals the steps of just that page with one grouped query on ``idx_steps_run_id``.
The run detail reads a run's step summaries in start order and builds the tree in one
pass over a dict: O(n), so a 50,000-step run is fine. ``run_columns`` reads the same
steps as columns (one list per field, parents as list positions, names and models as
indexes into short lists): about a sixth of the bytes and a third of the time, which is
what lets the dashboard open a 50,000-step run in well under a second.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from . import rows
from .readers import snapshot

TOTALS_SQL = f"""
SELECT run_id, COUNT(*), TOTAL(status = 'running'), TOTAL(status = 'error'),
       TOTAL(tokens_input), TOTAL(tokens_output), TOTAL(tokens_cache_read),
       TOTAL(tokens_cache_write), TOTAL(cost_usd), TOTAL({rows.UNPRICED_SQL})
FROM steps INDEXED BY idx_steps_run_id
WHERE run_id IN ({{marks}})
GROUP BY run_id
"""


RUN_STATUSES = ("running", "success", "error", "incomplete")
"""``incomplete``: its process went away without ending it (sweeps.py)."""


@dataclass(frozen=True)
class RunFilter:
    """What the run list was asked for; every field is optional."""

    name: Optional[str] = None
    name_contains: Optional[str] = None
    status: Optional[str] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    replay_of: Optional[str] = None
    limit: int = 50
    offset: int = 0
    cursor: Optional[tuple[float, int]] = None


def run_list_sql(f: RunFilter) -> tuple[str, list]:
    """The page query. The driving index follows the most selective filter given."""
    where, params = [], []
    if f.replay_of is not None:
        index = "idx_runs_replay_of_run"
        where.append("replay_of_run_id = ?")
        params.append(f.replay_of)
    elif f.name is not None:
        index = "idx_runs_name"
    elif f.status is not None:
        index = "idx_runs_status"
    else:
        index = "idx_runs_started"
    if f.name is not None:
        where.append("run_name = ?")
        params.append(f.name)
    if f.status is not None:
        where.append("status = ?")
        params.append(f.status)
    if f.name_contains is not None:
        where.append("run_name LIKE ? ESCAPE '\\'")
        params.append("%" + _escape_like(f.name_contains) + "%")
    window, window_params = rows.time_window(f.start_time, f.end_time, f.cursor)
    where += window
    params += window_params
    sql = (
        f"SELECT rowid, {rows.select_list(rows.RUN_COLUMNS)} FROM runs INDEXED BY {index}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?"
    )
    params.extend([f.limit + 1, f.offset])
    return sql, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_runs(conn: sqlite3.Connection, f: RunFilter) -> tuple[list[dict], Optional[tuple]]:
    """One page of runs with their totals, and the cursor of the next page (or None)."""
    sql, params = run_list_sql(f)
    with snapshot(conn):
        found = conn.execute(sql, params).fetchall()
        page = found[: f.limit]
        runs = [rows.run_dict(row[1:]) for row in page]
        totals = run_totals(conn, [run["run_id"] for run in runs])
    for run in runs:
        run.update(totals.get(run["run_id"]) or rows.empty_totals())
    next_cursor = None
    if len(found) > f.limit:
        last = page[-1]
        next_cursor = (last[1 + rows.RUN_COLUMNS.index("started_at")], last[0])
    return runs, next_cursor


def run_totals(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, dict]:
    """Totals of the given runs' steps, keyed by run id, from one grouped query."""
    if not run_ids:
        return {}
    totals = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        sql = TOTALS_SQL.format(marks=", ".join("?" * len(chunk)))
        for (run_id, count, running, errors, tokens_in, tokens_out, cache_read, cache_write,
             cost, unpriced) in conn.execute(sql, chunk):
            totals[run_id] = rows.totals_dict(
                count, int(running), int(errors), int(tokens_in), int(tokens_out),
                int(cache_read), int(cache_write), cost, count - int(unpriced), int(unpriced),
            )
    return totals


def run_detail(conn: sqlite3.Connection, run_id: str, payloads: bool = False) -> Optional[dict]:
    """The run, its steps in start order with depth, offset and children, and the roots.

    Returns None for an unknown run. A run whose start has not arrived yet but whose
    steps have is shown with ``partial`` set, named after its earliest step.
    """
    columns = rows.STEP_SUMMARY_COLUMNS + (rows.STEP_PAYLOAD_COLUMNS if payloads else ())
    with snapshot(conn):
        run = rows.fetch_run(conn, run_id)
        found = conn.execute(
            f"SELECT {rows.select_list(columns)} FROM steps INDEXED BY idx_steps_run_id "
            "WHERE run_id = ? ORDER BY started_at, rowid",
            (run_id,),
        ).fetchall()
    if run is None and not found:
        return None
    if payloads:
        steps = [rows.step_dict(columns, row) for row in found]
        for step in steps:
            step["run_id"] = run_id
    else:
        steps = [rows.summary_dict(row) for row in found]
    if run is None:
        run = _partial_run(run_id, steps)
    totals = rows.Totals()
    for step in steps:
        totals.add(step)
    run.update(totals.as_dict())
    roots = build_tree(steps)
    start = min([run["started_at"]] + [s["started_at"] for s in steps[:1]])
    end = max(
        [run["ended_at"] or run["started_at"]]
        + [s["ended_at"] or s["started_at"] for s in steps]
    )
    for step in steps:
        step["offset_ms"] = round((step["started_at"] - start) * 1000, 3)
    return {
        "run": run,
        "steps": steps,
        "roots": roots,
        "timeline": {"start": start, "end": end, "duration_ms": round((end - start) * 1000, 3)},
    }


def _partial_run(run_id: str, steps: list[dict]) -> dict:
    first = steps[0]
    run = dict.fromkeys(rows.RUN_COLUMNS)
    run.update(run_id=run_id, run_name=first["step_name"], started_at=first["started_at"],
               status="running", metadata={}, duration_ms=None, partial=True)
    return run


def build_tree(steps: list[dict]) -> list[str]:
    """Give each step ``children`` (ids, in start order) and ``depth``; return root ids.

    One pass to link, one walk to set depths. A step whose parent is not in the run
    (not arrived yet, or from elsewhere) is a root marked ``orphan``; a cycle, which
    only corrupt input can make, is broken at its earliest step the same way.
    """
    by_id = {step["step_id"]: step for step in steps}
    roots: list[str] = []
    for step in steps:
        step["children"] = []
        step["depth"] = -1
    for step in steps:
        parent_id = step["parent_step_id"]
        parent = by_id.get(parent_id) if parent_id is not None else None
        if parent is None or parent is step:
            roots.append(step["step_id"])
            if parent_id is not None:
                step["orphan"] = True
        else:
            parent["children"].append(step["step_id"])
    _set_depths(by_id, roots)
    for step in steps:
        if step["depth"] < 0:  # unreachable from any root: part of a cycle
            parent = by_id[step["parent_step_id"]]
            parent["children"].remove(step["step_id"])
            step["orphan"] = True
            roots.append(step["step_id"])
            _set_depths(by_id, [step["step_id"]])
    return roots


def _set_depths(by_id: dict[str, dict], roots: list[str]) -> None:
    stack = [(root, 0) for root in roots]
    while stack:
        step_id, depth = stack.pop()
        step = by_id[step_id]
        if step["depth"] >= 0:
            continue
        step["depth"] = depth
        stack.extend((child, depth + 1) for child in step["children"])


COLUMN_SQL = (
    "SELECT step_id, parent_step_id, step_name, model, status, started_at, latency_ms, "
    "tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, cost_usd, "
    "error_type, error FROM steps INDEXED BY idx_steps_run_id "
    "WHERE run_id = ? ORDER BY started_at, rowid"
)


def run_columns(conn: sqlite3.Connection, run_id: str) -> Optional[dict]:
    """The run and its step summaries as columns, in start order; None for an unknown run.

    Step ``i`` is the ``i``-th value of every list in ``steps``. ``parent`` holds the
    position of the step's parent (-1: a root); ``name``, ``model`` and ``status`` hold
    positions in ``names``, ``models`` (-1: none) and ``statuses``. Times are
    milliseconds from ``timeline.start``. Roots whose parent is not in the run (or that
    closed a cycle) are listed in ``orphans``, as the run detail marks them. Errors are
    listed only for the steps that have one, cut as the run detail cuts them.
    """
    with snapshot(conn):
        run = rows.fetch_run(conn, run_id)
        found = conn.execute(COLUMN_SQL, (run_id,)).fetchall()
    if run is None and not found:
        return None
    (ids, parent_ids, names, models, statuses, started, latency, tokens_in, tokens_out,
     cache_read, cache_write, costs, error_types, errors) = (
        [list(column) for column in zip(*found)] if found else [[] for _ in range(14)])
    if run is None:
        run = _partial_run(run_id, [{"step_name": names[0], "started_at": started[0]}])
    position = {step_id: i for i, step_id in enumerate(ids)}
    parents = [-1 if p is None else position.get(p, -1) for p in parent_ids]
    orphans = [i for i, p in enumerate(parent_ids) if p is not None and parents[i] == -1]
    orphans += _break_cycles(parents)
    start = min([run["started_at"]] + started[:1])
    ends = [s + (lat or 0.0) / 1000 for s, lat in zip(started, latency)]
    end = max([run["ended_at"] or run["started_at"]] + ends)
    unpriced = sum(1 for cost in costs if cost is None)
    status_count = {}
    for status in statuses:
        status_count[status] = status_count.get(status, 0) + 1
    run.update(rows.totals_dict(
        len(ids), status_count.get("running", 0), status_count.get("error", 0),
        sum(tokens_in), sum(tokens_out), sum(cache_read), sum(cache_write),
        sum(cost for cost in costs if cost is not None), len(ids) - unpriced, unpriced,
    ))
    name_list, name_of = _dictionary(names)
    model_list, model_of = _dictionary(model for model in models if model is not None)
    status_list, status_of = _dictionary(statuses)
    cut = rows.SUMMARY_ERROR_CHARS
    return {
        "run": run,
        "timeline": {"start": start, "end": end, "duration_ms": round((end - start) * 1000, 3)},
        "count": len(ids),
        "names": name_list,
        "models": model_list,
        "statuses": status_list,
        "steps": {
            "step_id": ids,
            "parent": parents,
            "name": [name_of[name] for name in names],
            "model": [-1 if model is None else model_of[model] for model in models],
            "status": [status_of[status] for status in statuses],
            "offset_ms": [round((s - start) * 1000, 3) for s in started],
            "latency_ms": [None if lat is None else round(lat, 3) for lat in latency],
            "tokens_input": tokens_in,
            "tokens_output": tokens_out,
            "tokens_cache_read": cache_read,
            "tokens_cache_write": cache_write,
            "cost_usd": costs,
        },
        "orphans": sorted(orphans),
        "errors": [
            {"index": i, "error_type": error_types[i],
             "error": error if error is None or len(error) <= cut else error[:cut] + "…"}
            for i, error in enumerate(errors) if error is not None or error_types[i] is not None
        ],
    }


def _dictionary(values) -> tuple[list, dict]:
    """The distinct values in first-seen order, and each one's position."""
    position: dict = {}
    for value in values:
        if value not in position:
            position[value] = len(position)
    return list(position), position


def _break_cycles(parents: list[int]) -> list[int]:
    """Make roots of the steps no root reaches (a parent cycle, which only corrupt input
    makes), each at its earliest step, as ``build_tree`` does; return their positions."""
    children: list[list[int]] = [[] for _ in parents]
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    reached = bytearray(len(parents))

    def reach(stack: list[int]) -> None:
        while stack:
            i = stack.pop()
            if not reached[i]:
                reached[i] = 1
                stack.extend(children[i])

    reach([i for i, p in enumerate(parents) if p < 0])
    cut = []
    for i in range(len(parents)):
        if not reached[i]:
            parents[i] = -1
            cut.append(i)
            reach([i])
    return cut
