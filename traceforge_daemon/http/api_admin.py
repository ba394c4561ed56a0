"""Maintenance over HTTP: POST /api/prune, the running daemon's side of
``traceforge-daemon prune`` (the writer deletes in small chunks while ingest goes on)."""

from __future__ import annotations

from aiohttp import web

from .errors import ApiError
from .operations import ApiRoutes
from .reads import STORE
from .health_responses import PruneResult
from .schemas import PruneBody

routes = ApiRoutes("daemon")


@routes.post("/api/prune", summary="Delete old traces", body=PruneBody, answer=PruneResult,
             errors=(503,))
async def prune(request: web.Request, body: PruneBody) -> web.Response:
    """Deletes runs older than older_than_s (running runs excepted) with their steps, then
    the oldest runs until the data fits in max_bytes; answers once done, with the counts and
    the database size before and after. The writer deletes a chunk at a time between
    ingest transactions, so ingest goes on meanwhile."""
    try:
        result = await request.app[STORE].prune(body.older_than_s, body.max_bytes)
    except RuntimeError as exc:
        raise ApiError(503, f"cannot prune now: {exc}") from None
    return web.json_response(result)
