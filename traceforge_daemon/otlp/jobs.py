"""The OTLP reads, run in reader processes: building and encoding spans there keeps
that work off the event loop and out of the daemon's own process (``storage.readers``).

The export is the OpenTelemetry file exporter's format: JSON Lines, one ``TracesData``
per line. A line holds one run (one trace), or up to LINE_SPANS of its spans for a
larger run, under a resource naming the run's service.
"""

from __future__ import annotations

import gzip
import sqlite3
from typing import Optional

import msgspec
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ..storage import export, forwarding
from ..storage.readers import snapshot
from ..storage.rows import RUN_COLUMNS
from ..storage.runs_query import RunFilter
from . import encode
from .values import to_json_dict

LINE_SPANS = 1000
_encode_json = msgspec.json.Encoder().encode


def _lines(steps: list[dict], run: encode.RunInfo) -> bytes:
    lines = []
    for start in range(0, len(steps), LINE_SPANS):
        data = encode.traces_data((step, run) for step in steps[start:start + LINE_SPANS])
        lines.append(_encode_json(to_json_dict(data)) + b"\n")
    return b"".join(lines)


def run_lines(conn: sqlite3.Connection, run_id: str) -> Optional[bytes]:
    """One run as OTLP/JSON lines; None for an unknown run. Running steps are left out."""
    with snapshot(conn):
        run = conn.execute(
            "SELECT run_name, metadata FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        steps = export.ended_steps(conn, run_id)
        known = run is not None or conn.execute(
            "SELECT 1 FROM steps WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None
    if not known:
        return None
    info = encode.run_info(*run) if run is not None else encode.UNKNOWN_RUN
    return _lines(steps, info)


_NAME, _METADATA, _ID = (1 + RUN_COLUMNS.index(c) for c in ("run_name", "metadata", "run_id"))


def _one_run(conn: sqlite3.Connection, row: tuple) -> tuple[bytes, int]:
    steps = export.ended_steps(conn, row[_ID])
    return _lines(steps, encode.run_info(row[_NAME], row[_METADATA])), len(steps)


def export_page(conn: sqlite3.Connection, run_filter: RunFilter,
                ) -> tuple[bytes, Optional[tuple[float, int]], int]:
    """A page of a range export as OTLP/JSON lines (see ``storage.export.run_page``)."""
    return export.run_page(conn, run_filter, _one_run)


def count_spans(conn: sqlite3.Connection, run_filter: RunFilter) -> int:
    return export.count_steps(conn, run_filter, ended_only=True)


# ---- forwarding ----

class Batch(msgspec.Struct):
    """A request body for the forwarder, and where the log stands."""

    body: bytes
    """gzip-compressed ExportTraceServiceRequest, protobuf or OTLP/JSON"""
    spans: int
    through: int
    log_end: int
    oldest_at: Optional[float]


def forward_batch(conn: sqlite3.Connection, after: int, limit: int, max_bytes: int,
                  json: bool) -> Batch:
    """Up to ``limit`` ended steps logged after ``after``, as one compressed request of
    about ``max_bytes`` at most (always at least one span)."""
    found = forwarding.backlog(conn, after, limit)
    runs = export.runs_by_id(conn, sorted({step["run_id"] for _, step in found.steps}))
    infos = {run_id: encode.run_info(*run) for run_id, run in runs.items()}
    through, size, pieces = found.through, 0, []
    for seq, step in found.steps:
        size += sum(len(step[c] or "") for c in ("input_data", "output_data", "metadata"))
        if pieces and size > max_bytes:
            through = pieces[-1][0]
            break
        pieces.append((seq, step))
    request = trace_service_pb2.ExportTraceServiceRequest(resource_spans=encode.resource_spans(
        (step, infos.get(step["run_id"], encode.UNKNOWN_RUN)) for _, step in pieces))
    raw = _encode_json(to_json_dict(request)) if json else request.SerializeToString()
    return Batch(gzip.compress(raw, compresslevel=6), len(pieces), through, found.log_end,
                 found.oldest_at)


def cursor(conn: sqlite3.Connection, endpoint: str) -> Optional[forwarding.Cursor]:
    return forwarding.cursor(conn, endpoint)


def lag_figures(conn: sqlite3.Connection, after: int) -> tuple[int, Optional[float]]:
    """(the log's last seq, when the first step after ``after`` was committed)."""
    found = forwarding.backlog(conn, after, 0)
    return found.log_end, found.oldest_at


def count_between(conn: sqlite3.Connection, after: int, upto: int) -> int:
    return forwarding.count_between(conn, after, upto)
