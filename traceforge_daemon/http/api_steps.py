"""HTTP handlers for steps: one step, its replay inputs, the search, and replay."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..storage import jobs
from ..storage.steps_query import StepFilter
from .errors import ApiError, bad
from .params import Query, check_step_id, decode_cursor
from .reads import json_bytes, read_found, read_json

MAX_SEARCH_PAGE = 1000
MAX_REPLAY_BODY = 1024 * 1024
MAX_REPLAY_DEPTH = 500
"""Deepest nesting of arrays and objects a replay body may have. Without a fixed limit the
answer would depend on the Python version's recursion limits (3.11 refuses ~1,000 levels
that 3.13 accepts)."""

routes = web.RouteTableDef()


@routes.get("/api/steps/{step_id}")
async def get_one_step(request: web.Request) -> web.Response:
    """One step with its input, output, error and traceback, children and replays."""
    step_id = check_step_id(request.match_info["step_id"])
    Query(request, ())

    return json_bytes(await read_found(request, "step", step_id, jobs.step_body, step_id))


@routes.get("/api/steps/{step_id}/inputs")
async def get_inputs(request: web.Request) -> web.Response:
    """What re-running the step needs: name, recorded input, model, parameters, output."""
    step_id = check_step_id(request.match_info["step_id"])
    Query(request, ())
    return json_bytes(await read_found(request, "step", step_id, jobs.step_inputs_body, step_id))


@routes.get("/api/search")
async def search_steps(request: web.Request) -> web.Response:
    """The seed's step query; every filter combines with the others."""
    query = Query(request, ("run_id", "step_name", "has_error", "min_tokens", "start_time",
                            "end_time", "limit", "cursor", "payloads"))
    step_filter = StepFilter(
        run_id=query.run_id(),
        step_name=query.text("step_name"),
        has_error=query.boolean("has_error"),
        min_tokens=query.integer("min_tokens"),
        start_time=query.number("start_time"),
        end_time=query.number("end_time"),
        limit=query.integer("limit", 100, minimum=1, maximum=MAX_SEARCH_PAGE),
        cursor=decode_cursor(query),
        payloads=query.boolean("payloads", True),
    )

    return await read_json(request, jobs.search_page, step_filter)


@routes.post("/api/replay")
async def replay(request: web.Request) -> web.Response:
    """The inputs to re-run a step, with ``override_input`` (when given) as its input.

    The daemon does not run anything: ``traceforge_client.replay.replay_step`` calls
    your executor with these inputs and records the result as a run linked to this one.
    """
    Query(request, ())
    body = await _json_object(request)
    unknown = set(body) - {"step_id", "override_input"}
    if unknown:
        raise bad(min(unknown), "is not known here; send step_id and override_input")
    step_id = body.get("step_id")
    if not isinstance(step_id, str):
        raise bad("step_id", "is required in the body: the id of the step to replay")
    check_step_id(step_id)
    return json_bytes(await read_found(
        request, "step", step_id, jobs.replay_inputs_body, step_id, body.get("override_input")
    ))


async def _json_object(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > MAX_REPLAY_BODY:
        raise ApiError(413, f"the body is over {MAX_REPLAY_BODY} bytes")
    raw = await request.read()
    try:  # strict JSON: no NaN, no lone surrogates, which could not be sent back
        body = msgspec.json.decode(raw or b"null")
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "the body must be JSON: {\"step_id\": \"...\", "
                       "\"override_input\": ...}") from None
    if _deeper_than(body, MAX_REPLAY_DEPTH):
        raise ApiError(400, f"the body's JSON is nested deeper than {MAX_REPLAY_DEPTH} levels")
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object with 'step_id' "
                       "(and optionally 'override_input')")
    return body


def _deeper_than(value: object, limit: int) -> bool:
    """True if arrays and objects in ``value`` nest more than ``limit`` deep (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit and children:
            return True
        pending.extend((child, depth + 1) for child in children
                       if isinstance(child, (dict, list)))
    return False
