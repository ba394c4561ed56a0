"""GET /api/stats: per step name counts, error rates, latency percentiles, tokens, cost,
plus what was lost on the way (client drops, slow live-view subscribers)."""

from __future__ import annotations

from aiohttp import web

from ..storage import jobs
from ..storage.stats_query import StatsFilter
from .api_events import HUB
from .params import Query
from .reads import STORE, read_json

routes = web.RouteTableDef()


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.Response:
    query = Query(request, ("run_id", "step_name", "start_time", "end_time", "limit"))
    stats_filter = StatsFilter(
        run_id=query.run_id(),
        step_name=query.text("step_name"),
        start_time=query.number("start_time"),
        end_time=query.number("end_time"),
        limit=query.integer("limit", 100, minimum=1, maximum=1000),
    )
    readers = request.app[STORE].readers
    daemon_side = {
        "events": request.app[HUB].stats(),
        "reader": {"queries": readers.queries, "timeouts": readers.timeouts},
    }
    return await read_json(request, jobs.stats_body, stats_filter, daemon_side)
