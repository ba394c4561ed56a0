"""The API's one error shape, ``{"error": "...", "status": N}``, and the middleware that
makes every failure leave as JSON: 4xx for the caller's mistakes, 500 only for ours."""

from __future__ import annotations

import json
import logging

from aiohttp import web

logger = logging.getLogger("traceforge.daemon")


class ApiError(web.HTTPException):
    """An HTTP error that renders as the one JSON error shape."""

    def __init__(self, status: int, message: str, **extra) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": message, "status": status, **extra}),
            content_type="application/json",
        )


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


def bad(name: str, message: str) -> ApiError:
    """A 400 that names the bad parameter."""
    return ApiError(400, f"parameter '{name}' {message}")


def not_found(what: str, identifier: str) -> ApiError:
    return ApiError(404, f"no {what} with id '{identifier}'")


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason or "error")
        raise
    except Exception:
        logger.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(500, "internal error; see the daemon log")
