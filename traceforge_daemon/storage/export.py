"""What every export reads, and TraceForge's flat JSONL format (``format=flat``).

The OTLP export (``traceforge_daemon.otlp``, the default format) and this one select
runs and steps the same way: ``run_page`` walks the runs a filter matches, newest
first, a page at a time, and ``ended_steps`` reads a run's ended steps with everything
a span carries (``SPAN_COLUMNS``).

The flat format is not OTLP, and no OpenTelemetry tool reads it: it is the export
TraceForge had first, kept for those who use it. Each step becomes a span with the keys traceId, spanId, parentSpanId, operationName,
startTimeUnixNano, endTimeUnixNano, attributes and status, and ``llm.*`` /
``traceforge.*`` attributes, with the OpenTelemetry GenAI names beside
them (``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` ...) so tools that read
either family understand the file. OTel has no cost attribute; ``gen_ai.usage.cost``
is the name Langfuse reads. An unpriced step carries no cost at all, never $0.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Callable, Optional

import msgspec

from . import rows
from .readers import snapshot
from .runs_query import RunFilter, run_list_sql

LINES_PER_CHUNK = 1000
PAGE_RUNS = 100
"""Runs a range export reads per query."""
PAGE_SPANS = 5000
"""A range export's page ends after the run that takes it past this many spans."""

SPAN_COLUMNS = ("run_id",) + rows.STEP_SUMMARY_COLUMNS + rows.STEP_PAYLOAD_COLUMNS + (
    "pid", "host", "traceback")
"""A step as a span needs it, payloads kept as their JSON text."""

_encode = msgspec.json.Encoder().encode


def trace_id(run_id: str) -> str:
    """32 hex characters; a legacy uuid-with-dashes id keeps its hex digits."""
    return run_id.replace("-", "")[-32:].rjust(32, "0")


def span_id(step_id: str) -> str:
    """16 hex characters; a legacy uuid id keeps its last, random, 16 digits."""
    return step_id.replace("-", "")[-16:].rjust(16, "0")


def nanos(seconds: Optional[float]) -> Optional[str]:
    """Epoch seconds as the decimal string of nanoseconds that OTLP/JSON uses."""
    return None if seconds is None else str(round(seconds * 1_000_000_000))


def _value(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def span(step: dict, run_id: str, run_name: Optional[str]) -> dict:
    attributes: list[tuple[str, object]] = [("traceforge.step_name", step["step_name"])]
    if run_name is not None:
        attributes.append(("traceforge.run_name", run_name))
    attributes.append(("traceforge.status", step["status"]))
    if step["latency_ms"] is not None:
        attributes.append(("traceforge.latency_ms", float(step["latency_ms"])))
    if step["model"]:
        attributes += [("llm.model", step["model"]), ("gen_ai.request.model", step["model"])]
    cached = step["tokens_cache_read"] + step["tokens_cache_write"]
    attributes += [
        ("llm.tokens.input", step["tokens_input"]),
        ("llm.tokens.output", step["tokens_output"]),
        # GenAI counts cached input inside input_tokens; our tokens_input excludes it.
        ("gen_ai.usage.input_tokens", step["tokens_input"] + cached),
        ("gen_ai.usage.output_tokens", step["tokens_output"]),
    ]
    if step["tokens_cache_read"]:
        attributes.append(("gen_ai.usage.cache_read.input_tokens", step["tokens_cache_read"]))
    if step["tokens_cache_write"]:
        attributes.append(
            ("gen_ai.usage.cache_creation.input_tokens", step["tokens_cache_write"])
        )
    if rows.is_unpriced(step):
        attributes.append(("traceforge.cost.unpriced", True))
    else:
        cost = float(step["cost_usd"] or 0.0)
        attributes += [("llm.cost_usd", cost), ("gen_ai.usage.cost", cost)]
    if step["error_type"]:
        attributes.append(("error.type", step["error_type"]))
    if step["status"] == "error":
        status = {"code": "STATUS_CODE_ERROR", "message": step["error"] or ""}
    elif step["status"] == "ok":
        status = {"code": "STATUS_CODE_OK"}
    else:
        status = {"code": "STATUS_CODE_UNSET"}
    parent = step["parent_step_id"]
    return {
        "traceId": trace_id(run_id),
        "spanId": span_id(step["step_id"]),
        "parentSpanId": span_id(parent) if parent else "",
        "operationName": step["step_name"],
        "startTimeUnixNano": nanos(step["started_at"]),
        "endTimeUnixNano": nanos(step["ended_at"]),
        "attributes": [{"key": key, "value": _value(value)} for key, value in attributes],
        "status": status,
    }


def ended_steps(conn: sqlite3.Connection, run_id: str) -> list[dict]:
    """The run's ended steps in start order, as dicts of SPAN_COLUMNS."""
    found = conn.execute(
        f"SELECT {rows.select_list(SPAN_COLUMNS)} FROM steps INDEXED BY idx_steps_run_id "
        "WHERE run_id = ? AND status != 'running' ORDER BY started_at, rowid",
        (run_id,),
    ).fetchall()
    return [dict(zip(SPAN_COLUMNS, row)) for row in found]


RunRow = tuple
"""(rowid, *rows.RUN_COLUMNS), as ``runs_query.run_list_sql`` selects it."""


def run_page(conn: sqlite3.Connection, run_filter: RunFilter,
             export_one: Callable[[sqlite3.Connection, RunRow], tuple[bytes, int]],
             ) -> tuple[bytes, Optional[tuple[float, int]], int]:
    """One page of a range export: (the exported runs' bytes, the cursor to pass as
    ``run_filter.cursor`` for the next page or None at the end, spans in the page)."""
    sql, params = run_list_sql(replace(run_filter, limit=PAGE_RUNS, offset=0))
    found = conn.execute(sql, params).fetchall()  # up to PAGE_RUNS + 1 rows
    parts, spans = [], 0
    for row in found[:PAGE_RUNS]:
        body, count = export_one(conn, row)
        parts.append(body)
        spans += count
        if spans >= PAGE_SPANS:
            break
    if len(parts) == len(found):
        return b"".join(parts), None, spans
    last = found[len(parts) - 1]
    return b"".join(parts), (last[1 + rows.RUN_COLUMNS.index("started_at")], last[0]), spans


def count_steps(conn: sqlite3.Connection, run_filter: RunFilter, ended_only: bool) -> int:
    """How many steps a range export of ``run_filter`` holds (for a progress bar)."""
    sql, params = run_list_sql(replace(run_filter, limit=rows.MAX_ROWID - 1, offset=0))
    ended = " AND status != 'running'" if ended_only else ""
    (count,) = conn.execute(
        f"SELECT COUNT(*) FROM steps WHERE run_id IN (SELECT run_id FROM ({sql})){ended}",
        params).fetchone()
    return count


def flat_run(conn: sqlite3.Connection, row: RunRow) -> tuple[bytes, int]:
    """One run of a range export in the flat format."""
    run_id = row[1 + rows.RUN_COLUMNS.index("run_id")]
    chunks = export_run(conn, run_id) or []
    return b"".join(chunks), sum(chunk.count(b"\n") for chunk in chunks)


def export_run(conn: sqlite3.Connection, run_id: str) -> Optional[list[bytes]]:
    """The run's spans as JSONL, in chunks of lines; None for an unknown run."""
    with snapshot(conn):
        run = conn.execute("SELECT run_name FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        found = conn.execute(
            f"SELECT {rows.select_list(rows.STEP_SUMMARY_COLUMNS)} FROM steps INDEXED BY idx_steps_run_id "
            "WHERE run_id = ? ORDER BY started_at, rowid",
            (run_id,),
        ).fetchall()
    if run is None and not found:
        return None
    run_name = run[0] if run else None
    chunks = []
    for start in range(0, len(found), LINES_PER_CHUNK):
        lines = [
            _encode(span(dict(zip(rows.STEP_SUMMARY_COLUMNS, row)), run_id, run_name))
            for row in found[start:start + LINES_PER_CHUNK]
        ]
        chunks.append(b"\n".join(lines) + b"\n")
    return chunks


def runs_by_id(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, tuple]:
    """(run_name, metadata text) of each stored run among ``run_ids``."""
    found: dict[str, tuple] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        found.update((row[0], row[1:]) for row in conn.execute(
            f"SELECT run_id, run_name, metadata FROM runs WHERE run_id IN "
            f"({', '.join('?' * len(chunk))})", chunk))
    return found
