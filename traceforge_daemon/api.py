"""Wires the read API into the daemon's aiohttp app: the reader pool, routes, live events.

``app.py`` calls ``setup_api(app)`` once; everything the API owns starts and stops
with the app.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import api_events, api_runs, api_stats, api_steps, openapi
from .api_common import READER
from .app import DAEMON
from .reader import Reader


def setup_api(app: web.Application) -> None:
    daemon = app[DAEMON]
    reader = Reader(daemon.settings.db, ingest_busy=daemon.ingest_busy)
    app[READER] = reader

    async def close_reader(app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, reader.close)

    app.on_cleanup.append(close_reader)
    app.router.add_routes(api_runs.routes)
    app.router.add_routes(api_steps.routes)
    app.router.add_routes(api_stats.routes)
    api_events.setup(app)
    app.router.add_routes(openapi.routes)
