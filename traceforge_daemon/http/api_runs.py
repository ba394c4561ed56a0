"""HTTP handlers for runs: the list, one run as a tree (or as compact columns), its JSONL
export, and compare."""

from __future__ import annotations

from aiohttp import web

from ..storage import jobs
from ..storage.compare import UnknownRun
from .errors import ApiError
from .operations import ApiRoutes, Stream
from .reads import json_bytes, read_found, read_json
from .responses import Compare, RunDetail, RunList, RunSteps
from .schemas import CompareParams, RunDetailParams, RunListParams, RunParams

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


@routes.get("/api/runs/{run_id}/export", summary="Export a run as JSONL spans",
            params=RunParams, answer=Stream("application/x-ndjson", "JSON Lines"),
            errors=(404, 503))
async def export_run(request: web.Request, params: RunParams) -> web.StreamResponse:
    """One OpenTelemetry-style span per line (traceId, spanId, parentSpanId, operationName,
    startTimeUnixNano, endTimeUnixNano, attributes, status), with llm.* and gen_ai.*
    attributes."""
    run_id = params.run_id
    chunks = await read_found(request, "run", run_id, jobs.export_chunks, run_id)
    response = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson",
        "Content-Disposition": f'attachment; filename="traceforge-{run_id}.jsonl"',
    })
    response.content_length = sum(len(chunk) for chunk in chunks)
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/api/compare", summary="Compare two runs", params=CompareParams, answer=Compare,
            errors=(404, 503))
async def compare(request: web.Request, params: CompareParams) -> web.Response:
    """Steps paired by replay link, tree position (name and occurrence among siblings),
    then name; deltas are B minus A."""
    try:
        return await read_json(request, jobs.compare_body, params.run_id_a, params.run_id_b)
    except UnknownRun as exc:
        raise ApiError(404, str(exc)) from None
