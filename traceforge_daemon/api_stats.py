"""GET /api/stats: per step name counts, error rates, latency percentiles, tokens, cost,
plus what was lost on the way (client drops, slow live-view subscribers)."""

from __future__ import annotations

from aiohttp import web

from . import rows
from .api_common import READER, json_bytes, read
from .api_events import HUB
from .params import Query
from .stats_query import StatsFilter, step_stats

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
    result = await read(request, step_stats, stats_filter)
    reader = request.app[READER]
    result["events"] = request.app[HUB].stats()
    result["reader"] = {"queries": reader.queries, "timeouts": reader.timeouts}
    return json_bytes(rows.encode(result))
