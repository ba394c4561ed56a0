"""HTTP handlers for steps: one step, its replay inputs, the search, and replay."""

from __future__ import annotations

from aiohttp import web

from ..storage import jobs
from .operations import ApiRoutes
from .reads import json_bytes, read_found, read_json
from .responses import ReplayInputs, SearchPage, StepDetail, StepInputs
from .schemas import ReplayBody, SearchParams, StepParams

routes = ApiRoutes("steps")


@routes.get("/api/steps/{step_id}", summary="One step", params=StepParams, answer=StepDetail,
            errors=(404, 503))
async def get_one_step(request: web.Request, params: StepParams) -> web.Response:
    """The step with input, output, metadata, error and traceback, its children's ids and
    the runs that replayed it."""
    step_id = params.step_id
    return json_bytes(await read_found(request, "step", step_id, jobs.step_body, step_id))


@routes.get("/api/steps/{step_id}/inputs", summary="What re-running a step needs",
            params=StepParams, answer=StepInputs, errors=(404, 503))
async def get_inputs(request: web.Request, params: StepParams) -> web.Response:
    """Name, recorded input, model, parameters (the step's metadata) and the original
    output."""
    step_id = params.step_id
    return json_bytes(await read_found(request, "step", step_id, jobs.step_inputs_body, step_id))


@routes.get("/api/search", summary="Search steps", params=SearchParams, answer=SearchPage,
            errors=(503,))
async def search_steps(request: web.Request, params: SearchParams) -> web.Response:
    """Steps across runs, newest first; every filter combines with the others."""
    return await read_json(request, jobs.search_page, params.step_filter())


@routes.post("/api/replay", summary="Inputs to replay a step", body=ReplayBody,
             answer=ReplayInputs, errors=(404, 503))
async def replay(request: web.Request, body: ReplayBody) -> web.Response:
    """The step's inputs with override_input (when given) in place of its input. The
    daemon runs nothing: traceforge_client.replay.replay_step runs your executor and
    records a run linked to the original."""
    step_id = body.step_id
    return json_bytes(await read_found(
        request, "step", step_id, jobs.replay_inputs_body, step_id, body.override_input
    ))
