"""Export stored runs as JSON Lines: OTLP/JSON by default, or TraceForge's flat format.

    from traceforge_client.export import export_run_jsonl, export_jsonl
    jsonl = export_run_jsonl(storage, run_id)                       # one run
    jsonl = export_jsonl(storage, start_time=time.time() - 3600)    # the last hour's runs

``format="otlp"`` (the default) is OTLP/JSON as OpenTelemetry's file exporter writes
it: one ``TracesData`` per line, which Jaeger, an OpenTelemetry Collector and other
OTLP tools read, with GenAI, OpenInference and ``traceforge.*`` attributes; running
steps are left out. ``format="flat"`` is the export TraceForge had first, one flat span
per line (traceId, spanId, parentSpanId, operationName, ...): it is not OTLP. The
daemon builds the lines (``GET /api/runs/{run_id}/export``, ``GET /api/export``); these
functions fetch them, so the library needs no OpenTelemetry package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .storage import Storage, get_storage


def export_run_jsonl(storage: Optional[Storage], run_id: str,
                     path: Optional[Union[str, Path]] = None, format: str = "otlp") -> str:
    """The run as JSON Lines text; also written to ``path`` when given.

    Raises ``storage.NotFound`` for an unknown run.
    """
    text = (storage or get_storage()).export_run_jsonl(run_id, format=format)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def export_jsonl(storage: Optional[Storage] = None, path: Optional[Union[str, Path]] = None,
                 *, start_time: Optional[float] = None, end_time: Optional[float] = None,
                 name: Optional[str] = None, name_contains: Optional[str] = None,
                 status: Optional[str] = None, format: str = "otlp") -> str:
    """Every run started in [start_time, end_time] and matching the name and status
    filters (all runs when none is given) as JSON Lines text; also written to ``path``."""
    text = (storage or get_storage()).export_jsonl(
        format=format, start_time=start_time, end_time=end_time, name=name,
        q=name_contains, status=status)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
