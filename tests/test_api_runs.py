"""The run endpoints against a real daemon holding real traced runs: the list with its
totals, filters and pages, one run as a tree, and the JSONL export."""

from __future__ import annotations

import json
import time

import pytest

from api_support import call, get


def test_run_list_is_newest_first_with_totals_over_each_runs_steps(demo):
    runs = get(demo.url, "/api/runs")["runs"]
    assert [run["run_name"] for run in runs] == [
        "unpriced", "error-demo", "research: climate", "research: climate"]
    assert runs[2]["run_id"] == demo.ids["b"] and runs[3]["run_id"] == demo.ids["a"]
    a = runs[3]
    assert a["status"] == "success" and a["metadata"] == {"variant": "a"}
    assert a["step_count"] == 8
    assert a["error_count"] == 0 and a["running_steps"] == 0
    assert a["tokens_input"] == 112 + 89 + 106 + 78
    assert a["tokens_output"] == 48 + 95 + 88 + 42
    assert a["total_tokens"] == a["tokens_input"] + a["tokens_output"]
    assert a["cost_usd"] == pytest.approx(0.001 + 0.0005 + 0.0006 + 0.0004)
    assert a["unpriced_steps"] == 0
    assert a["duration_ms"] == pytest.approx((a["ended_at"] - a["started_at"]) * 1000, abs=0.01)
    errors = runs[1]
    assert errors["status"] == "error" and errors["error_count"] == 1


def test_an_unpriced_run_reports_no_cost_rather_than_zero(demo):
    run = get(demo.url, f"/api/runs/{demo.ids['unpriced']}")["run"]
    assert run["cost_usd"] is None
    assert run["unpriced_steps"] == 1 and run["tokens_input"] == 2000
    assert run["tokens_cache_read"] == 300


def test_run_list_filters_by_name_text_status_time_and_combinations(demo):
    def names(**params):
        return [run["run_id"] for run in get(demo.url, "/api/runs", **params)["runs"]]

    assert names(name="research: climate") == [demo.ids["b"], demo.ids["a"]]
    assert names(q="CLIMATE") == [demo.ids["b"], demo.ids["a"]]  # case-insensitive text
    assert names(q="%") == []  # LIKE wildcards are taken literally
    assert names(status="error") == [demo.ids["errors"]]
    assert names(status="success", name="research: climate") == [demo.ids["b"], demo.ids["a"]]
    b_start = get(demo.url, f"/api/runs/{demo.ids['b']}")["run"]["started_at"]
    assert names(end_time=b_start) == [demo.ids["b"], demo.ids["a"]]
    assert names(start_time=b_start, end_time=b_start) == [demo.ids["b"]]
    assert names(start_time=b_start, status="error") == [demo.ids["errors"]]
    assert names(start_time=time.time() + 3600) == []


def test_run_list_pages_by_cursor_and_by_offset_without_gaps_or_repeats(demo):
    every = [run["run_id"] for run in get(demo.url, "/api/runs")["runs"]]
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = get(demo.url, "/api/runs", **params)
        seen += [run["run_id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == every
    by_offset = [get(demo.url, "/api/runs", limit=1, offset=i)["runs"][0]["run_id"]
                 for i in range(len(every))]
    assert by_offset == every
    assert get(demo.url, "/api/runs", limit=2, offset=3)["next_cursor"] is None


def test_run_detail_is_a_tree_with_depth_children_roots_and_offsets(demo):
    detail = get(demo.url, f"/api/runs/{demo.ids['a']}")
    steps = {step["step_id"]: step for step in detail["steps"]}
    names = [step["step_name"] for step in detail["steps"]]
    assert names == ["web_search", "web_search", "web_search", "extract_facts", "summarize",
                     "draft_summary", "refine_summary", "format_report"]
    summarize = steps[demo.ids["a_summarize"]]
    assert [steps[c]["step_name"] for c in summarize["children"]] == [
        "draft_summary", "refine_summary"]
    assert summarize["depth"] == 0
    assert all(steps[c]["depth"] == 1 and steps[c]["parent_step_id"] == summarize["step_id"]
               for c in summarize["children"])
    assert len(detail["roots"]) == 6
    assert all(steps[root]["parent_step_id"] is None for root in detail["roots"])
    run_start = detail["run"]["started_at"]
    for step in detail["steps"]:
        assert step["offset_ms"] == pytest.approx((step["started_at"] - run_start) * 1000,
                                                  abs=0.01)
        assert "input_data" not in step  # summaries only, unless asked
    offsets = [step["offset_ms"] for step in detail["steps"]]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert detail["timeline"]["start"] == run_start


def test_run_detail_carries_payloads_only_when_asked(demo):
    detail = get(demo.url, f"/api/runs/{demo.ids['a']}", payloads="true")
    first = detail["steps"][0]
    assert first["input_data"] == {"query": "climate change"}
    assert first["output_data"] == {"results": ["climate change"], "count": 1}
    assert first["run_id"] == demo.ids["a"]


def columns_as_steps(answer: dict) -> list[dict]:
    """The compact columns of /api/runs/{id}/steps turned back into one dict per step."""
    cols, ids = answer["steps"], answer["steps"]["step_id"]
    errors = {error["index"]: error for error in answer["errors"]}
    return [{
        "step_id": ids[i],
        "parent_step_id": None if cols["parent"][i] < 0 else ids[cols["parent"][i]],
        "step_name": answer["names"][cols["name"][i]],
        "model": None if cols["model"][i] < 0 else answer["models"][cols["model"][i]],
        "status": answer["statuses"][cols["status"][i]],
        "offset_ms": cols["offset_ms"][i],
        "latency_ms": cols["latency_ms"][i],
        **{key: cols[key][i] for key in ("tokens_input", "tokens_output", "tokens_cache_read",
                                         "tokens_cache_write", "cost_usd")},
        "error_type": errors.get(i, {}).get("error_type"),
        "error": errors.get(i, {}).get("error"),
    } for i in range(answer["count"])]


@pytest.mark.parametrize("which", ["a", "errors", "unpriced"])
def test_run_steps_as_columns_hold_the_same_steps_as_the_run_detail(demo, which):
    run_id = demo.ids[which]
    detail = get(demo.url, f"/api/runs/{run_id}")
    answer = get(demo.url, f"/api/runs/{run_id}/steps")
    assert answer["run"] == detail["run"] and answer["timeline"] == detail["timeline"]
    assert answer["count"] == len(detail["steps"]) == len(answer["steps"]["step_id"])
    assert all(len(column) == answer["count"] for column in answer["steps"].values())
    fields = ("step_id", "parent_step_id", "step_name", "model", "status", "offset_ms",
              "tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write",
              "cost_usd", "error_type", "error")
    for got, step in zip(columns_as_steps(answer), detail["steps"]):
        assert {key: got[key] for key in fields} == {key: step[key] for key in fields}
        assert got["latency_ms"] == pytest.approx(step["latency_ms"], abs=0.001)
    assert answer["orphans"] == []


def test_run_steps_columns_mark_orphans_and_break_parent_cycles():
    from traceforge_daemon.storage.runs_query import _break_cycles

    parents = [-1, 0, 3, 2, 3]  # 2 and 3 are each other's parent; 4 hangs below them
    assert _break_cycles(parents) == [2]
    assert parents == [-1, 0, -1, 2, 3]


def test_unknown_run_is_404_and_malformed_id_is_400(demo):
    status, body, _ = call(demo.url, "GET", "/api/runs/" + "0" * 32)
    assert (status, body["status"]) == (404, 404) and "0" * 32 in body["error"]
    status, body, _ = call(demo.url, "GET", "/api/runs/NOT-A-RUN")
    assert status == 400 and "run_id" in body["error"]
    status, body, _ = call(demo.url, "GET", "/api/runs/" + "0" * 32 + "/steps")
    assert (status, body["status"]) == (404, 404)


def test_the_flat_export_is_one_span_per_step_with_llm_and_gen_ai_attributes(demo):
    status, text, headers = call(demo.url, "GET", f"/api/runs/{demo.ids['a']}/export",
                                 {"format": "flat"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in headers["Content-Disposition"]
    spans = [json.loads(line) for line in text.splitlines()]
    assert len(spans) == 8
    detail = get(demo.url, f"/api/runs/{demo.ids['a']}")
    by_id = {step["step_id"]: step for step in detail["steps"]}
    for span in spans:
        assert set(span) == {"traceId", "spanId", "parentSpanId", "operationName",
                             "startTimeUnixNano", "endTimeUnixNano", "attributes", "status"}
        assert span["traceId"] == demo.ids["a"]
        step = by_id[span["spanId"]]
        assert span["parentSpanId"] == (step["parent_step_id"] or "")
        assert int(span["startTimeUnixNano"]) == pytest.approx(step["started_at"] * 1e9, abs=1e3)
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        assert span["status"] == {"code": "STATUS_CODE_OK"}
    extract = next(s for s in spans if s["operationName"] == "extract_facts")
    attributes = {a["key"]: a["value"] for a in extract["attributes"]}
    assert attributes["llm.model"] == {"stringValue": "claude-haiku-4-5"}
    assert attributes["gen_ai.request.model"] == {"stringValue": "claude-haiku-4-5"}
    assert attributes["llm.tokens.input"] == {"intValue": "112"}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "112"}
    assert attributes["llm.tokens.output"] == {"intValue": "48"}
    assert attributes["gen_ai.usage.output_tokens"] == {"intValue": "48"}
    assert attributes["llm.cost_usd"] == {"doubleValue": 0.001}
    assert attributes["gen_ai.usage.cost"] == {"doubleValue": 0.001}
    assert attributes["traceforge.step_name"] == {"stringValue": "extract_facts"}
    assert "doubleValue" in attributes["traceforge.latency_ms"]


def test_the_flat_export_marks_errors_and_unpriced_steps(demo):
    flat = {"format": "flat"}
    _, text, _ = call(demo.url, "GET", f"/api/runs/{demo.ids['errors']}/export", flat)
    failed = next(json.loads(line) for line in text.splitlines()
                  if json.loads(line)["operationName"] == "call_api")
    assert failed["status"]["code"] == "STATUS_CODE_ERROR"
    assert "upstream timed out" in failed["status"]["message"]
    _, text, _ = call(demo.url, "GET", f"/api/runs/{demo.ids['unpriced']}/export", flat)
    attributes = {a["key"]: a["value"] for a in json.loads(text)["attributes"]}
    assert attributes["traceforge.cost.unpriced"] == {"boolValue": True}
    assert "llm.cost_usd" not in attributes and "gen_ai.usage.cost" not in attributes
    # GenAI counts cached input inside input_tokens; the flat format's llm.* name does not
    assert attributes["llm.tokens.input"] == {"intValue": "2000"}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "2300"}
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == {"intValue": "300"}
    for params in (flat, None):
        status, body, _ = call(demo.url, "GET", "/api/runs/" + "a" * 32 + "/export", params)
        assert status == 404 and body["status"] == 404


FIFTY_THOUSAND = r'''
import traceforge_client as tf
with tf.trace_run("huge") as run_id:
    for group in range(500):
        with tf.trace_step("batch"):
            for item in range(99):
                with tf.trace_step("item") as r:
                    r["tokens_input"] = 1
print(run_id)
assert tf.flush(120)
'''


def test_a_fifty_thousand_step_run_detail_builds_its_whole_tree(daemon):
    run_id = daemon.run_python(FIFTY_THOUSAND, timeout=300).stdout.strip()
    detail = get(daemon.http_url, f"/api/runs/{run_id}")  # its speed: bench/query_bench.py
    steps = detail["steps"]
    assert len(steps) == 50_000 and detail["run"]["step_count"] == 50_000
    assert len(detail["roots"]) == 500
    assert sum(len(step["children"]) for step in steps) == 49_500
    assert {step["depth"] for step in steps} == {0, 1}
    assert detail["run"]["tokens_input"] == 49_500
    columns = get(daemon.http_url, f"/api/runs/{run_id}/steps")
    assert columns["count"] == 50_000 and columns["run"] == detail["run"]
    assert columns["steps"]["step_id"] == [step["step_id"] for step in steps]
    assert sum(parent < 0 for parent in columns["steps"]["parent"]) == 500
    assert len(json.dumps(columns)) < len(json.dumps(detail)) / 4  # what the dashboard reads
