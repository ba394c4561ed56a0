"""A run as OpenTelemetry-style spans, one JSON object per line: TraceForge's JSONL export.

Each step becomes a span with the keys traceId, spanId, parentSpanId, operationName,
startTimeUnixNano, endTimeUnixNano, attributes and status, and ``llm.*`` /
``traceforge.*`` attributes, with the OpenTelemetry GenAI names beside
them (``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` ...) so tools that read
either family understand the file. OTel has no cost attribute; ``gen_ai.usage.cost``
is the name Langfuse reads. An unpriced step carries no cost at all, never $0.
"""

from __future__ import annotations

import sqlite3
from typing import Optional

import msgspec

from . import rows
from .readers import snapshot

LINES_PER_CHUNK = 1000

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
