"""What the daemon reports about itself: GET /api/health, and GET /api/stats (per step
name counts, error rates, latency percentiles, tokens, cost, plus what was lost on the
way: client drops, slow live-view subscribers)."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from ..storage import jobs
from .api_events import HUB
from .api_otlp import receiver_health
from .operations import ApiRoutes
from .reads import STORE, read_json
from .health_responses import Health
from .responses import Stats
from .schemas import StatsParams

HEALTH = web.AppKey("health", Callable[[], dict])
"""The daemon's health report, as /api/health serves it."""

routes = ApiRoutes("daemon")


@routes.get("/api/health", summary="Daemon health", answer=Health)
async def health(request: web.Request) -> web.Response:
    """Version, uptime, connections, events received and committed, spans taken in over
    OTLP, and the forwarder's state (null unless --otlp-endpoint is set)."""
    return web.json_response({**request.app[HEALTH](),
                              "otlp_receiver": receiver_health(request.app)})


@routes.get("/api/stats", summary="Statistics per step name", params=StatsParams,
            answer=Stats, errors=(503,))
async def stats(request: web.Request, params: StatsParams) -> web.Response:
    """Count, error rate, latency mean/p50/p95/p99 (nearest rank), tokens and cost per
    step name, and client drop counts by reason."""
    readers = request.app[STORE].readers
    daemon_side = {
        "events": request.app[HUB].stats(),
        "reader": {"queries": readers.queries, "timeouts": readers.timeouts},
    }
    return await read_json(request, jobs.stats_body, params.stats_filter(), daemon_side)
