"""GET /api/stats against real traced runs: per step name counts, error rates,
nearest-rank latency percentiles, tokens and cost, and client drop counts."""

from __future__ import annotations

import math
import socket

import pytest

from api_support import call, get
from conftest import wait_until
from traceforge_protocol import wire as protocol


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def test_each_step_name_has_counts_error_rate_percentiles_tokens_and_cost(demo):
    stats = {s["step_name"]: s for s in get(demo.url, "/api/stats")["steps"]}
    search = stats["web_search"]
    assert (search["count"], search["errors"], search["error_rate"]) == (6, 0, 0.0)
    latencies = [row[0] for row in demo.daemon.query(
        "SELECT latency_ms FROM steps WHERE step_name = 'web_search'")]
    for percent in (50, 95, 99):
        assert search["latency_ms"][f"p{percent}"] == pytest.approx(
            nearest_rank(latencies, percent), abs=1e-3)
    assert search["latency_ms"]["mean"] == pytest.approx(sum(latencies) / 6, abs=1e-3)
    assert stats["call_api"]["errors"] == 1 and stats["call_api"]["error_rate"] == 1.0
    extract = stats["extract_facts"]
    assert (extract["tokens_input"], extract["tokens_output"]) == (112 + 150, 48 + 60)
    assert extract["cost_usd"] == pytest.approx(0.003)
    assert stats["mystery_llm"]["cost_usd"] is None
    assert stats["mystery_llm"]["unpriced_steps"] == 1
    counts = [s["count"] for s in stats.values()]
    assert counts == sorted(counts, reverse=True)  # most frequent first


def test_stats_narrow_to_a_run_a_name_or_a_time_range(demo):
    only_a = get(demo.url, "/api/stats", run_id=demo.ids["a"])["steps"]
    assert {s["step_name"]: s["count"] for s in only_a}["web_search"] == 3
    assert "call_api" not in {s["step_name"] for s in only_a}
    [one] = get(demo.url, "/api/stats", step_name="extract_facts")["steps"]
    assert one["count"] == 2
    assert get(demo.url, "/api/stats", start_time=2**40)["steps"] == []
    assert len(get(demo.url, "/api/stats", limit=2)["steps"]) == 2


def test_drops_reported_by_clients_are_counted_by_reason(demo):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(demo.daemon.socket))
        sock.sendall(protocol.PREFACE
                     + protocol.encode_frame(protocol.Hello(versions=[1], pid=1, host="t"))
                     + protocol.encode_frame(protocol.Batch(seq=1, events=[],
                                                            dropped={"queue_full": 5})))
        wait_until(lambda: get(demo.url, "/api/stats")["client_drops"].get("queue_full") == 5,
                   timeout=10, message="the drop report in /api/stats")
    stats = get(demo.url, "/api/stats")
    assert stats["events"]["subscribers"] == 0
    assert stats["reader"]["queries"] > 0
    status, body, _ = call(demo.url, "GET", "/api/stats", {"limit": "x"})
    assert status == 400 and "limit" in body["error"]
