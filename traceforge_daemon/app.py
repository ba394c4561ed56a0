"""The daemon's aiohttp application: the one read interface to stored traces."""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from .settings import is_loopback

if TYPE_CHECKING:
    from .daemon import Daemon

logger = logging.getLogger("traceforge.daemon")

DAEMON = web.AppKey("daemon", object)


class ApiError(web.HTTPException):
    """An HTTP error that renders as the one JSON error shape: {"error", "status"}."""

    def __init__(self, status: int, message: str, **extra) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": message, "status": status, **extra}),
            content_type="application/json",
        )


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every failure leaves as JSON: 4xx for the caller's mistakes, 500 only for ours."""
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


@web.middleware
async def token_guard(request: web.Request, handler):
    """Beyond loopback every request needs the daemon's token (Bearer or ?token=)."""
    daemon: "Daemon" = request.app[DAEMON]
    settings = daemon.settings
    if settings.http and not is_loopback(settings.http[0]):
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query.get("token", "")
        if not given or not hmac.compare_digest(given, settings.token or ""):
            return error_response(401, "this daemon needs its token: Authorization: Bearer <token>")
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    """Daemon health: version, uptime, connections, events received and committed."""
    return web.json_response(request.app[DAEMON].health())


def create_app(daemon: "Daemon") -> web.Application:
    app = web.Application(middlewares=[json_errors, token_guard], client_max_size=1024**2)
    app[DAEMON] = daemon
    app.router.add_get("/api/health", health)
    from .api import setup_api  # here, not at the top: the API modules import this one
    from .ui import setup_ui

    setup_api(app)
    setup_ui(app)
    return app
