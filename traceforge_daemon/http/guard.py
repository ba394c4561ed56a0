"""Who may use the HTTP API: beyond loopback, every request needs the daemon's token."""

from __future__ import annotations

import hmac

from aiohttp import web

from ..settings import Settings, is_loopback
from .errors import error_response

SETTINGS = web.AppKey("settings", Settings)


@web.middleware
async def token_guard(request: web.Request, handler):
    """Beyond loopback every request needs the daemon's token (Bearer or ?token=)."""
    settings = request.app[SETTINGS]
    if settings.http and not is_loopback(settings.http[0]):
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query.get("token", "")
        if not given or not hmac.compare_digest(given, settings.token or ""):
            return error_response(401, "this daemon needs its token: Authorization: Bearer <token>")
    return await handler(request)
