"""HTTP handlers for runs: the list, one run as a tree, its JSONL export, and compare."""

from __future__ import annotations

from aiohttp import web

from ..storage import jobs
from ..storage.compare import UnknownRun
from ..storage.runs_query import RunFilter
from .errors import ApiError, bad
from .params import Query, check_run_id, decode_cursor
from .reads import json_bytes, read, read_found, read_json

RUN_STATUSES = ("running", "success", "error")
MAX_RUNS_PAGE = 500

routes = web.RouteTableDef()


@routes.get("/api/runs")
async def get_runs(request: web.Request) -> web.Response:
    """Runs with totals, newest first; page with ``cursor`` (or ``offset``)."""
    query = Query(request, ("name", "q", "status", "start_time", "end_time", "replay_of",
                            "limit", "offset", "cursor"))
    run_filter = RunFilter(
        name=query.text("name"),
        name_contains=query.text("q"),
        status=query.choice("status", RUN_STATUSES),
        start_time=query.number("start_time"),
        end_time=query.number("end_time"),
        replay_of=query.run_id("replay_of"),
        limit=query.integer("limit", 50, minimum=1, maximum=MAX_RUNS_PAGE),
        offset=query.integer("offset", 0),
        cursor=decode_cursor(query),
    )
    if run_filter.cursor is not None and run_filter.offset:
        raise bad("offset", "cannot be combined with 'cursor'; use one way of paging")

    return await read_json(request, jobs.runs_page, run_filter)


@routes.get("/api/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """The run and its steps as a tree, with depth and offset for a waterfall."""
    run_id = check_run_id(request.match_info["run_id"])
    query = Query(request, ("payloads",))
    payloads = query.boolean("payloads", False)

    return json_bytes(
        await read_found(request, "run", run_id, jobs.run_detail_body, run_id, payloads)
    )


@routes.get("/api/runs/{run_id}/export")
async def export_run(request: web.Request) -> web.StreamResponse:
    """The run's steps as OpenTelemetry-style spans, one JSON object per line."""
    run_id = check_run_id(request.match_info["run_id"])
    Query(request, ())
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


@routes.get("/api/compare")
async def compare(request: web.Request) -> web.Response:
    """Two runs side by side: paired steps with deltas (B minus A), and the unpaired."""
    query = Query(request, ("run_id_a", "run_id_b"))
    run_id_a, run_id_b = query.run_id("run_id_a"), query.run_id("run_id_b")
    for name, value in (("run_id_a", run_id_a), ("run_id_b", run_id_b)):
        if value is None:
            raise bad(name, "is required: the id of a run to compare")

    try:
        return await read_json(request, jobs.compare_body, run_id_a, run_id_b)
    except UnknownRun as exc:
        raise ApiError(404, str(exc)) from None
