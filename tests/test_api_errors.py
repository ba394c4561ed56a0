"""Every route, given bad input, answers a 4xx in the one JSON error shape that names
what was wrong; unknown ids are 404. None of it is a 500 or a traceback."""

from __future__ import annotations

import pytest

from api_support import call

RUN = "0" * 32
STEP = "0" * 16
LONG = "x" * 513

CASES = [
    # (method, path, query, body, status, words the message must contain)
    ("GET", "/api/runs", {"limit": "abc"}, None, 400, ["limit"]),
    ("GET", "/api/runs", {"limit": "0"}, None, 400, ["limit", "between"]),
    ("GET", "/api/runs", {"limit": "501"}, None, 400, ["limit"]),
    ("GET", "/api/runs", {"offset": "-1"}, None, 400, ["offset"]),
    ("GET", "/api/runs", {"status": "finished"}, None, 400, ["status", "running"]),
    ("GET", "/api/runs", {"start_time": "yesterday"}, None, 400, ["start_time"]),
    ("GET", "/api/runs", {"start_time": "nan"}, None, 400, ["start_time"]),
    ("GET", "/api/runs", {"end_time": "inf"}, None, 400, ["end_time"]),
    ("GET", "/api/runs", {"replay_of": "xyz"}, None, 400, ["replay_of"]),
    ("GET", "/api/runs", {"cursor": "!!!"}, None, 400, ["cursor"]),
    ("GET", "/api/runs", {"cursor": "MXwy", "offset": "1"}, None, 400, ["offset", "cursor"]),
    ("GET", "/api/runs", {"name": LONG}, None, 400, ["name", "512"]),
    ("GET", "/api/runs", {"statuss": "error"}, None, 400, ["statuss", "known"]),
    ("GET", "/api/runs?limit=1&limit=2", None, None, 400, ["limit", "once"]),
    ("GET", "/api/runs/xyz", None, None, 400, ["run_id", "32"]),
    ("GET", "/api/runs/" + "A" * 32, None, None, 400, ["run_id", "lowercase"]),
    ("GET", "/api/runs/" + RUN, None, None, 404, [RUN]),
    ("GET", "/api/runs/" + RUN, {"payloads": "maybe"}, None, 400, ["payloads"]),
    ("GET", "/api/runs/xyz/steps", None, None, 400, ["run_id"]),
    ("GET", "/api/runs/" + RUN + "/steps", None, None, 404, [RUN]),
    ("GET", "/api/runs/" + RUN + "/steps", {"payloads": "true"}, None, 400, ["payloads"]),
    ("GET", "/api/runs/xyz/export", None, None, 400, ["run_id"]),
    ("GET", "/api/runs/" + RUN + "/export", None, None, 404, [RUN]),
    ("GET", "/api/runs/" + RUN + "/export", {"format": "x"}, None, 400, ["format"]),
    ("GET", "/api/export", {"format": "otlp-json"}, None, 400, ["format", "otlp", "flat"]),
    ("GET", "/api/export", {"start_time": "soon"}, None, 400, ["start_time"]),
    ("GET", "/api/export", {"status": "done"}, None, 400, ["status"]),
    ("GET", "/api/export", {"run_id": RUN}, None, 400, ["run_id", "known"]),
    ("GET", "/api/steps/xyz", None, None, 400, ["step_id", "16"]),
    ("GET", "/api/steps/" + STEP, None, None, 404, [STEP]),
    ("GET", "/api/steps/" + RUN, None, None, 400, ["step_id"]),
    ("GET", "/api/steps/xyz/inputs", None, None, 400, ["step_id"]),
    ("GET", "/api/steps/" + STEP + "/inputs", None, None, 404, [STEP]),
    ("GET", "/api/search", {"run_id": "abc"}, None, 400, ["run_id"]),
    ("GET", "/api/search", {"has_error": "maybe"}, None, 400, ["has_error", "true or false"]),
    ("GET", "/api/search", {"min_tokens": "-1"}, None, 400, ["min_tokens"]),
    ("GET", "/api/search", {"min_tokens": "1.5"}, None, 400, ["min_tokens", "whole"]),
    ("GET", "/api/search", {"min_tokens": str(2**64)}, None, 400, ["min_tokens"]),
    ("GET", "/api/search", {"start_time": "x"}, None, 400, ["start_time"]),
    ("GET", "/api/search", {"end_time": "1e400"}, None, 400, ["end_time"]),
    ("GET", "/api/search", {"limit": "1001"}, None, 400, ["limit"]),
    ("GET", "/api/search", {"cursor": "bm90IGEgY3Vyc29y"}, None, 400, ["cursor"]),
    ("GET", "/api/search", {"payloads": "2"}, None, 400, ["payloads"]),
    ("GET", "/api/search", {"step_name": LONG}, None, 400, ["step_name"]),
    ("GET", "/api/search", {"has_errors": "true"}, None, 400, ["has_errors", "has_error"]),
    ("GET", "/api/compare", None, None, 400, ["run_id_a", "required"]),
    ("GET", "/api/compare", {"run_id_a": "x", "run_id_b": RUN}, None, 400, ["run_id_a"]),
    ("GET", "/api/compare", {"run_id_a": RUN, "run_id_b": RUN}, None, 404, ["run_id_a"]),
    ("POST", "/api/replay", None, None, 400, ["JSON object", "step_id"]),
    ("POST", "/api/replay", None, b"{not json", 400, ["JSON"]),
    ("POST", "/api/replay", None, b"[1, 2]", 400, ["JSON object"]),
    ("POST", "/api/replay", None, b"[" * 100_000, 400, ["JSON"]),
    ("POST", "/api/replay", None, {"override_input": 1}, 400, ["step_id", "required"]),
    ("POST", "/api/replay", None, {"step_id": 7}, 400, ["step_id"]),
    ("POST", "/api/replay", None, {"step_id": "xyz"}, 400, ["step_id", "16"]),
    ("POST", "/api/replay", None, {"step_id": STEP, "extra": 1}, 400, ["extra"]),
    ("POST", "/api/replay", None, {"step_id": STEP}, 404, [STEP]),
    ("POST", "/api/replay", {"x": "1"}, {"step_id": STEP}, 400, ["'x'"]),
    ("POST", "/api/replay", None, b"{" + b" " * (1024 * 1024 + 10) + b"}", 413, []),
    ("GET", "/api/search", {"status": "dead"}, None, 400, ["status", "incomplete"]),
    ("POST", "/api/prune", None, {}, 400, ["older_than_s", "max_bytes"]),
    ("POST", "/api/prune", None, {"older_than_s": -1}, 400, ["older_than_s"]),
    ("POST", "/api/prune", None, {"older_than_s": "7d"}, 400, ["older_than_s"]),
    ("POST", "/api/prune", None, {"max_bytes": 0}, 400, ["max_bytes"]),
    ("GET", "/api/stats", {"limit": "0"}, None, 400, ["limit"]),
    ("GET", "/api/stats", {"run_id": "x"}, None, 400, ["run_id"]),
    ("GET", "/api/stats", {"start_time": "soon"}, None, 400, ["start_time"]),
    ("GET", "/api/events", {"run_id": "x"}, None, 400, ["run_id"]),
    ("GET", "/api/events", {"keepalive": "0"}, None, 400, ["keepalive"]),
    ("POST", "/api/ingest", None, b"{not json", 400, ["JSON"]),
    ("POST", "/api/ingest", None, {"events": [{"type": "step_start"}]}, 400, ["invalid"]),
    ("POST", "/api/ingest", None, {"events": "all of them"}, 400, ["invalid"]),
    ("POST", "/api/ingest", None, b'{"events": [], "pid": 1, "pid": 2}', 400,
     ["repeated", "pid"]),
    ("POST", "/api/ingest", None, b" " * (4 * 1024 * 1024 + 10), 413, ["bytes"]),
    ("POST", "/api/ingest", {"x": "1"}, {"events": []}, 400, ["'x'"]),
    ("GET", "/api/nowhere", None, None, 404, []),
    ("DELETE", "/api/runs", None, None, 405, []),
    ("GET", "/api/replay", None, None, 405, []),
]


def test_the_table_walks_every_api_route():
    from traceforge_daemon.http.openapi import SPEC

    walked = {path for _, path, *_ in CASES}
    for route in SPEC["paths"]:
        if not route.startswith("/api/") or route == "/api/health":
            continue
        concrete = route.replace("{run_id}", RUN).replace("{step_id}", STEP)
        assert any(path.split("?")[0] in (concrete, route.replace("{run_id}", "xyz")
                                          .replace("{step_id}", "xyz"))
                   for path in walked), f"no bad-input case for {route}"


@pytest.mark.parametrize("method, path, query, body, status, words", CASES,
                         ids=[f"{c[0]} {c[1][:40]} {c[2] or ''}"[:70] for c in CASES])
def test_bad_input_gets_a_4xx_in_the_one_json_shape_naming_the_problem(
        demo, method, path, query, body, status, words):
    raw = body if isinstance(body, bytes) else None
    got_status, got, headers = call(demo.url, method, path, query,
                                    body=None if raw is not None else body, raw_body=raw)
    assert got_status == status, got
    assert headers["Content-Type"].startswith("application/json")
    # the ingest route adds the socket protocol's error code
    assert set(got) - {"code"} == {"error", "status"} and got["status"] == status
    assert isinstance(got["error"], str) and "Traceback" not in got["error"]
    for word in words:
        assert word in got["error"], (word, got["error"])


def test_the_daemon_is_healthy_after_all_of_it(demo):
    assert demo.daemon.health()["status"] == "ok"
    status, runs, _ = call(demo.url, "GET", "/api/runs")
    assert status == 200 and len(runs["runs"]) == 4


def test_replay_bodies_that_json_cannot_send_back_are_refused_not_a_500(demo):
    step_id = demo.ids["failed_step"]
    for text in ('"\\ud800"', '{"a": NaN}', '[' * 5000 + ']' * 5000, '[' * 600 + ']' * 600):
        raw = ('{"step_id": "%s", "override_input": %s}' % (step_id, text)).encode()
        status, body, _ = call(demo.url, "POST", "/api/replay", raw_body=raw)
        assert status == 400 and "JSON" in body["error"], (text[:20], body)
    # Nesting up to the limit is fine on every Python version.
    raw = ('{"step_id": "%s", "override_input": %s}' % (step_id, '[' * 400 + ']' * 400)).encode()
    status, body, _ = call(demo.url, "POST", "/api/replay", raw_body=raw)
    assert status == 200, body
    raw = ('{"step_id": "%s", "override_input": "\\ud83d\\ude00"}' % step_id).encode()
    status, body, _ = call(demo.url, "POST", "/api/replay", raw_body=raw)
    assert status == 200 and body["input_data"] == "\U0001F600"
