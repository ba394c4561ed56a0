"""Per-step-name statistics: how often, how often it fails, how slow, how costly.

Percentiles are nearest-rank (the smallest latency with at least p% of the calls at or
below it), computed inside SQLite with a window function so the latencies never
travel to Python. Over a whole large database this reads every step once; narrow it
with ``run_id``, ``step_name`` or a time range for interactive use.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from . import rows
from .readers import snapshot

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class StatsFilter:
    run_id: Optional[str] = None
    step_name: Optional[str] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    limit: int = 100


def _where(f: StatsFilter) -> tuple[list[str], list]:
    where, params = [], []
    for clause, value in (("run_id = ?", f.run_id), ("step_name = ?", f.step_name)):
        if value is not None:
            where.append(clause)
            params.append(value)
    window, window_params = rows.time_window(f.start_time, f.end_time)
    return where + window, params + window_params


def step_stats(conn: sqlite3.Connection, f: StatsFilter) -> dict:
    where, params = _where(f)
    condition = " AND ".join(where) or "1"
    with snapshot(conn):
        groups = conn.execute(
            "SELECT step_name, COUNT(*), TOTAL(status = 'error'), TOTAL(status = 'running'), "
            f"TOTAL(tokens_input), TOTAL(tokens_output), TOTAL(cost_usd), TOTAL({rows.UNPRICED_SQL}), "
            f"AVG(latency_ms) FROM steps WHERE {condition} "
            "GROUP BY step_name ORDER BY COUNT(*) DESC, step_name LIMIT ?",
            params + [f.limit],
        ).fetchall()
        names = [group[0] for group in groups]
        percentiles = _percentiles(conn, condition, params, names)
        drops = conn.execute(
            "SELECT reason, TOTAL(count) FROM client_drops GROUP BY reason ORDER BY reason"
        ).fetchall()
    steps = []
    for name, count, errors, running, tokens_in, tokens_out, cost, unpriced, mean in groups:
        finished = count - int(running)
        unpriced = int(unpriced)
        latency = percentiles.get(name, {})
        steps.append({
            "step_name": name,
            "count": count,
            "running": int(running),
            "errors": int(errors),
            "error_rate": None if finished == 0 else round(errors / finished, 6),
            "latency_ms": {
                "mean": None if mean is None else round(mean, 3),
                **{f"p{p}": latency.get(p) for p in PERCENTILES},
            },
            "tokens_input": int(tokens_in),
            "tokens_output": int(tokens_out),
            "cost_usd": rows.cost_total(cost, count - unpriced, unpriced),
            "unpriced_steps": unpriced,
        })
    return {
        "steps": steps,
        "client_drops": {reason: int(total) for reason, total in drops},
    }


def _percentiles(conn: sqlite3.Connection, condition: str, params: list,
                 names: list[str]) -> dict[str, dict[int, float]]:
    result: dict[str, dict[int, float]] = {}
    for start in range(0, len(names), 500):
        chunk = names[start:start + 500]
        picks = ", ".join(
            f"MAX(CASE WHEN rn = ({p} * n + 99) / 100 THEN latency_ms END)" for p in PERCENTILES
        )
        sql = (
            f"SELECT step_name, {picks} FROM ("
            "SELECT step_name, latency_ms, "
            "ROW_NUMBER() OVER (PARTITION BY step_name ORDER BY latency_ms) AS rn, "
            "COUNT(*) OVER (PARTITION BY step_name) AS n "
            f"FROM steps WHERE latency_ms IS NOT NULL AND {condition} "
            f"AND step_name IN ({', '.join('?' * len(chunk))})"
            ") GROUP BY step_name"
        )
        for name, *values in conn.execute(sql, params + chunk):
            result[name] = {
                p: None if value is None else round(value, 3)
                for p, value in zip(PERCENTILES, values)
            }
    return result
