"""HTTP handlers for runs: the list, one run as a tree (or as compact columns), exports
(one run, or the runs a filter matches), and compare."""

from __future__ import annotations

from dataclasses import replace
from typing import Awaitable, Callable, Optional

from aiohttp import web

from ..storage import jobs
from ..storage.compare import UnknownRun
from .errors import ApiError
from .operations import ApiRoutes, Stream
from .reads import json_bytes, read, read_found, read_json
from .responses import Compare, RunDetail, RunList, RunSteps
from .schemas import (CompareParams, ExportParams, RunDetailParams, RunExportParams,
                      RunListParams, RunParams)

JSON_LINES = Stream("application/x-ndjson", "JSON Lines: OTLP/JSON TracesData (format=otlp) "
                    "or TraceForge's flat spans (format=flat), one per line")

routes = ApiRoutes("runs")


@routes.get("/api/runs", summary="List runs", params=RunListParams, answer=RunList,
            errors=(503,))
async def get_runs(request: web.Request, params: RunListParams) -> web.Response:
    """Runs with totals over their steps, newest first. Page with cursor (or offset)."""
    return await read_json(request, jobs.runs_page, params.run_filter())


@routes.get("/api/runs/{run_id}", summary="One run as a tree", params=RunDetailParams,
            answer=RunDetail, errors=(404, 503))
async def get_run(request: web.Request, params: RunDetailParams) -> web.Response:
    """The run, its steps in start order (each with depth, offset_ms from the run's start
    and its children's ids) and the ids of the root steps. Steps whose parent is not in
    the run are roots marked orphan."""
    run_id = params.run_id
    return json_bytes(
        await read_found(request, "run", run_id, jobs.run_detail_body, run_id, params.payloads)
    )


@routes.get("/api/runs/{run_id}/steps", summary="A run's steps as compact columns",
            params=RunParams, answer=RunSteps, errors=(404, 503))
async def get_run_steps(request: web.Request, params: RunParams) -> web.Response:
    """The run and its step summaries in start order, one list per field: parents as
    positions in the lists, names, models and statuses as positions in short lists, times
    in milliseconds from the run's start, errors only where there is one. The same steps
    as the run detail in about a sixth of the bytes: what the dashboard's waterfall
    reads. Inputs and outputs come from /api/steps/{step_id}."""
    run_id = params.run_id
    return json_bytes(await read_found(request, "run", run_id, jobs.run_steps_body, run_id))


def _otlp_jobs():
    """The OTLP export's jobs, imported on first use (they load protobuf)."""
    from ..otlp import jobs as otlp_jobs
    return otlp_jobs


async def _stream(request: web.Request, filename: str, chunks: list[bytes],
                  more: Optional[Callable[[], Awaitable[Optional[bytes]]]] = None,
                  ) -> web.StreamResponse:
    """Send ``chunks``, then whatever ``more()`` yields until it returns None."""
    response = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson",
        "Content-Disposition": f'attachment; filename="{filename}"',
    })
    if more is None:
        response.content_length = sum(len(chunk) for chunk in chunks)
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    while more is not None:
        chunk = await more()
        if chunk is None:
            break
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/api/runs/{run_id}/export", summary="Export a run", params=RunExportParams,
            answer=JSON_LINES, errors=(404, 503))
async def export_run(request: web.Request, params: RunExportParams) -> web.StreamResponse:
    """format=otlp (the default): OTLP/JSON, one TracesData per line, as OpenTelemetry's
    file exporter writes it (hex ids, nanosecond times as strings, integer enums,
    service.name in the resource), with GenAI, OpenInference and traceforge.* attributes;
    running steps are left out. format=flat: TraceForge's older flat span per line
    (traceId, spanId, parentSpanId, operationName, ...), which is not OTLP."""
    run_id = params.run_id
    if params.format == "flat":
        chunks = await read_found(request, "run", run_id, jobs.export_chunks, run_id)
        return await _stream(request, f"traceforge-{run_id}.jsonl", chunks)
    body = await read_found(request, "run", run_id, _otlp_jobs().run_lines, run_id)
    return await _stream(request, f"traceforge-{run_id}.otlp.jsonl", [body])


@routes.get("/api/export", summary="Export the runs a filter matches", params=ExportParams,
            answer=JSON_LINES, errors=(503,))
async def export_runs(request: web.Request, params: ExportParams) -> web.StreamResponse:
    """Every run matching the filters (all runs when none is given), newest first, in
    the format chosen as for one run's export; streamed a page of runs at a time."""
    page_job = jobs.export_page if params.format == "flat" else _otlp_jobs().export_page
    run_filter = params.run_filter()
    body, cursor, _ = await read(request, page_job, run_filter)

    async def more() -> Optional[bytes]:
        nonlocal cursor
        if cursor is None:
            return None
        chunk, cursor, _ = await read(request, page_job, replace(run_filter, cursor=cursor))
        return chunk

    suffix = "jsonl" if params.format == "flat" else "otlp.jsonl"
    return await _stream(request, f"traceforge-export.{suffix}", [body], more)


@routes.get("/api/compare", summary="Compare two runs", params=CompareParams, answer=Compare,
            errors=(404, 503))
async def compare(request: web.Request, params: CompareParams) -> web.Response:
    """Steps paired by replay link, tree position (name and occurrence among siblings),
    then name; deltas are B minus A."""
    try:
        return await read_json(request, jobs.compare_body, params.run_id_a, params.run_id_b)
    except UnknownRun as exc:
        raise ApiError(404, str(exc)) from None
