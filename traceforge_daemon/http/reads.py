"""The one path every API read takes: a job from ``storage.jobs`` run by the Store in a
reader process, so neither the query nor the JSON encoding runs on the event loop."""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from ..storage.readers import QueryTimeout
from ..storage.store import Store
from .errors import ApiError, not_found

STORE = web.AppKey("store", Store)


async def read(request: web.Request, job: Callable[..., Any], *args: Any) -> Any:
    """``job(conn, *args)`` in a reader process; a query past its deadline is a 503."""
    try:
        return await request.app[STORE].read(job, *args)
    except QueryTimeout as exc:
        raise ApiError(503, f"{exc}; narrow the filters (run_id, step_name or a time range)")


async def read_json(request: web.Request, job: Callable[..., Any], *args: Any) -> web.Response:
    """A response from a job that returns an encoded JSON body."""
    return json_bytes(await read(request, job, *args))


async def read_found(request: web.Request, what: str, identifier: str,
                     job: Callable[..., Any], *args: Any) -> Any:
    """Like ``read``, for a job that returns None when ``identifier`` is unknown: a 404."""
    result = await read(request, job, *args)
    if result is None:
        raise not_found(what, identifier)
    return result


def json_bytes(body: bytes, status: int = 200) -> web.Response:
    """A response from JSON already encoded (in a reader process, off the loop)."""
    return web.Response(body=body, status=status, content_type="application/json")
