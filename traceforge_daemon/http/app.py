"""The daemon's aiohttp application: the HTTP API, live events, the API docs and the
dashboard, on top of the Store. ``create_app`` is the only way in."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from ..settings import Settings
from ..storage.store import Store
from . import (
    api_admin, api_events, api_ingest, api_otlp, api_runs, api_stats, api_steps, guard, login,
    openapi, ui,
)
from .api_stats import HEALTH
from .errors import json_errors
from .guard import SETTINGS
from .params import MAX_BODY_BYTES
from .reads import STORE


def create_app(settings: Settings, store: Store, health_report: Callable[[], dict]) -> web.Application:
    app = web.Application(middlewares=[json_errors, guard.guard], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    guard.setup(app)
    app[STORE] = store
    app[HEALTH] = health_report
    app.router.add_routes(api_stats.routes)
    app.router.add_routes(api_ingest.routes)
    app.router.add_routes(api_runs.routes)
    app.router.add_routes(api_steps.routes)
    app.router.add_routes(api_admin.routes)
    api_events.setup(app)
    api_otlp.setup(app)
    app.router.add_routes(openapi.routes)
    ui.setup(app)
    login.setup(app)
    return app
