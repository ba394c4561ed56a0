"""What every API handler shares: the reader pool's app key and running a read on it."""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from .app import ApiError
from .reader import QueryTimeout, Reader

READER = web.AppKey("reader", Reader)


async def read(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(conn, *args)`` on a reader thread; a query past its deadline is a 503."""
    try:
        return await request.app[READER].run(fn, *args)
    except QueryTimeout as exc:
        raise ApiError(503, f"{exc}; narrow the filters (run_id, step_name or a time range)")


async def read_found(request: web.Request, what: str, identifier: str,
                     fn: Callable[..., Any], *args: Any) -> Any:
    """Like ``read``, for a job that returns None when ``identifier`` is unknown: a 404."""
    result = await read(request, fn, *args)
    if result is None:
        raise not_found(what, identifier)
    return result


def json_bytes(body: bytes, status: int = 200) -> web.Response:
    """A response from JSON already encoded (on the reader thread, off the loop)."""
    return web.Response(body=body, status=status, content_type="application/json")


def not_found(what: str, identifier: str) -> ApiError:
    return ApiError(404, f"no {what} with id '{identifier}'")
