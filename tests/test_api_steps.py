"""The step endpoints against a real daemon: one step, its replay inputs, the step
search with every filter alone and combined, and POST /api/replay."""

from __future__ import annotations

import itertools
import time

import pytest

from api_support import call, get


@pytest.fixture(scope="module")
def every_step(demo):
    """Every stored step, with payloads, straight from the runs (not from search)."""
    steps = []
    for run in get(demo.url, "/api/runs")["runs"]:
        steps += get(demo.url, f"/api/runs/{run['run_id']}", payloads="true")["steps"]
    return steps


def test_step_detail_has_payloads_error_traceback_children_and_run_name(demo):
    step = get(demo.url, f"/api/steps/{demo.ids['failed_step']}")
    assert step["step_name"] == "call_api" and step["status"] == "error"
    assert step["error"] == "ConnectionError: upstream timed out"
    assert step["error_type"] == "ConnectionError"
    assert "Traceback" in step["traceback"] and "upstream timed out" in step["traceback"]
    assert step["input_data"] == {"url": "https://example.invalid"}
    assert step["run_id"] == demo.ids["errors"] and step["run_name"] == "error-demo"
    summarize = get(demo.url, f"/api/steps/{demo.ids['a_summarize']}")
    assert len(summarize["children"]) == 2
    assert summarize["output_data"] == "summary"
    assert summarize["replay_run_ids"] == []


def test_step_inputs_hold_what_a_rerun_needs(demo):
    extract = demo.ids["extract_facts_ids"][0]
    inputs = get(demo.url, f"/api/steps/{extract}/inputs")
    assert inputs == {
        "step_id": extract,
        "run_id": demo.ids["a"],
        "step_name": "extract_facts",
        "input_data": {"prompt": "extract_facts"},
        "model": "claude-haiku-4-5",
        "parameters": {"temperature": 0.2, "max_tokens": 512},
        "original_output": "extract_facts output",
        "original_status": "ok",
        "original_error": None,
    }


def test_unknown_step_is_404_on_both_step_routes(demo):
    for path in ("/api/steps/" + "f" * 16, "/api/steps/" + "f" * 16 + "/inputs"):
        status, body, _ = call(demo.url, "GET", path)
        assert status == 404 and body == {"error": f"no step with id '{'f' * 16}'",
                                          "status": 404}


def _matches(step, run_id=None, step_name=None, has_error=None, min_tokens=None,
             start_time=None, end_time=None):
    return ((run_id is None or step["run_id"] == run_id)
            and (step_name is None or step["step_name"] == step_name)
            and (has_error is None or (step["status"] == "error") == has_error)
            and (min_tokens is None
                 or step["tokens_input"] + step["tokens_output"] >= min_tokens)
            and (start_time is None or step["started_at"] >= start_time)
            and (end_time is None or step["started_at"] <= end_time))


def test_search_returns_what_each_filter_and_each_pair_of_filters_select(demo, every_step):
    b_start = get(demo.url, f"/api/runs/{demo.ids['b']}")["run"]["started_at"]
    filters = {
        "run_id": demo.ids["a"],
        "step_name": "web_search",
        "has_error": True,
        "min_tokens": 200,
        "start_time": b_start,
        "end_time": b_start,
    }
    combos = [{}] + [dict([item]) for item in filters.items()] + [
        dict(pair) for pair in itertools.combinations(filters.items(), 2)]
    combos.append({"has_error": False, "step_name": "fallback"})
    combos.append({"run_id": demo.ids["b"], "step_name": "extract_facts", "min_tokens": 210,
                   "has_error": False, "start_time": b_start, "end_time": time.time()})
    for combo in combos:
        expected = sorted((s for s in every_step if _matches(s, **combo)),
                          key=lambda s: s["started_at"], reverse=True)
        if len(combo) <= 1:
            assert 0 < len(expected) < len(every_step) or not combo, combo
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in combo.items()}
        found = get(demo.url, "/api/search", **params, limit=1000)["steps"]
        assert [s["step_id"] for s in found] == [s["step_id"] for s in expected], combo
    assert get(demo.url, "/api/search", has_error="true")["steps"][0]["step_id"] == \
        demo.ids["failed_step"]


def test_search_results_carry_payloads_unless_turned_off(demo):
    found = get(demo.url, "/api/search", step_name="web_search", run_id=demo.ids["a"])["steps"]
    assert [s["input_data"]["query"] for s in found] == ["outlook", "recent data",
                                                          "climate change"]
    lean = get(demo.url, "/api/search", step_name="web_search", payloads="false")["steps"]
    assert lean and all("input_data" not in s for s in lean)


def test_search_pages_by_cursor_through_every_match_once(demo, every_step):
    seen, cursor = [], None
    while True:
        page = get(demo.url, "/api/search", limit=3, payloads="false",
                   **({"cursor": cursor} if cursor else {}))
        assert len(page["steps"]) <= 3
        seen += [s["step_id"] for s in page["steps"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(every_step)


def test_replay_returns_the_inputs_with_the_override_applied(demo):
    step_id = demo.ids["a_searches"][1]
    status, body, _ = call(demo.url, "POST", "/api/replay",
                           body={"step_id": step_id, "override_input": {"query": "revised"}})
    assert status == 200
    assert body["input_data"] == {"query": "revised"}
    assert body["original_input"] == {"query": "recent data"}
    assert body["overridden"] is True and body["step_name"] == "web_search"
    status, body, _ = call(demo.url, "POST", "/api/replay", body={"step_id": step_id})
    assert status == 200 and body["input_data"] == {"query": "recent data"}
    assert body["overridden"] is False
    status, body, _ = call(demo.url, "POST", "/api/replay", body={"step_id": "e" * 16})
    assert status == 404 and body["status"] == 404


def test_a_url_with_every_filter_left_empty_means_no_filter(demo):
    status, body, _ = call(demo.url, "GET", "/api/search?run_id=&step_name=&has_error="
                           "&min_tokens=&start_time=&end_time=&limit=")
    assert status == 200
    assert body == get(demo.url, "/api/search")
