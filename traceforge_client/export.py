"""Export a stored run as TraceForge's JSONL spans (OpenTelemetry-style, not OTLP).

    from traceforge_client.export import export_run_jsonl
    jsonl = export_run_jsonl(storage, run_id)

Each line is one span: traceId, spanId, parentSpanId, operationName,
startTimeUnixNano, endTimeUnixNano, attributes (``llm.*`` names and the OpenTelemetry
GenAI ``gen_ai.*`` names beside them) and status. The daemon builds the
lines (``GET /api/runs/{run_id}/export``); this function fetches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .storage import Storage, get_storage


def export_run_jsonl(storage: Optional[Storage], run_id: str,
                     path: Optional[Union[str, Path]] = None) -> str:
    """The run's spans as JSONL text; also written to ``path`` when given.

    Raises ``storage.NotFound`` for an unknown run.
    """
    text = (storage or get_storage()).export_run_jsonl(run_id)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
