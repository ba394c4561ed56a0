"""The daemon's aiohttp application: the HTTP API, live events, the API docs and the
dashboard, on top of the Store. ``create_app`` is the only way in."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from ..settings import Settings
from ..storage.store import Store
from . import api_events, api_runs, api_stats, api_steps, openapi, ui
from .errors import json_errors
from .guard import SETTINGS, token_guard
from .reads import STORE

HEALTH = web.AppKey("health", Callable[[], dict])
"""The daemon's health report, as /api/health serves it."""

MAX_BODY_BYTES = 1024 * 1024


async def health(request: web.Request) -> web.Response:
    """Daemon health: version, uptime, connections, events received and committed."""
    return web.json_response(request.app[HEALTH]())


def create_app(settings: Settings, store: Store, health_report: Callable[[], dict]) -> web.Application:
    app = web.Application(middlewares=[json_errors, token_guard], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[STORE] = store
    app[HEALTH] = health_report
    app.router.add_get("/api/health", health)
    app.router.add_routes(api_runs.routes)
    app.router.add_routes(api_steps.routes)
    app.router.add_routes(api_stats.routes)
    api_events.setup(app)
    app.router.add_routes(openapi.routes)
    ui.setup(app)
    return app
