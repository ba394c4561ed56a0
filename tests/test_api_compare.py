"""GET /api/compare against real traced runs: pairing by tree position, then by name,
deltas per step and in total, and the steps found on one side only."""

from __future__ import annotations

import json

import pytest

from api_support import PopulatedDaemon, call, get

SHAPES = r'''
import json
import traceforge_client as tf

def step(name, tokens=0, children=()):
    with tf.trace_step(name) as r:
        r["tokens_input"] = tokens
        r["cost_usd"] = tokens / 1000
        for child in children:
            child()

ids = {}
with tf.trace_run("loop") as ids["x"]:
    step("loop", children=[lambda: step("llm", 10), lambda: step("llm", 20)])
    step("llm", 30)
with tf.trace_run("loop") as ids["y"]:
    step("llm", 31)
    step("loop", children=[lambda: step("llm", 11), lambda: step("llm", 21),
                           lambda: step("llm", 40)])
with tf.trace_run("moved") as ids["m1"]:
    step("outer", children=[lambda: step("inner", 5)])
with tf.trace_run("moved") as ids["m2"]:
    step("wrapper", children=[lambda: step("outer", children=[lambda: step("inner", 7)])])
assert tf.flush(10)
print(json.dumps(ids))
'''


@pytest.fixture(scope="module")
def demo():
    populated = PopulatedDaemon()
    populated.ids.update(json.loads(populated.daemon.run_python(SHAPES).stdout))
    yield populated
    populated.close()


def compare(demo, a, b):
    return get(demo.url, "/api/compare", run_id_a=demo.ids[a], run_id_b=demo.ids[b])


def test_two_research_runs_pair_step_by_step_with_deltas_and_one_sided_steps(demo):
    result = compare(demo, "a", "b")
    assert result["run_a"]["run_id"] == demo.ids["a"]
    assert result["run_b"]["run_id"] == demo.ids["b"]
    paired = [row for row in result["steps"] if row["a"] and row["b"]]
    assert [row["step_name"] for row in paired] == [
        "web_search", "web_search", "web_search", "extract_facts", "summarize",
        "draft_summary", "refine_summary"]
    assert {row["match"] for row in paired} == {"tree"}
    assert result["matched"] == 7
    extract = next(row for row in paired if row["step_name"] == "extract_facts")
    assert extract["delta"]["tokens_input"] == 150 - 112
    assert extract["delta"]["tokens_output"] == 60 - 48
    assert extract["delta"]["total_tokens"] == 38 + 12
    assert extract["delta"]["cost_usd"] == pytest.approx(0.001)
    assert extract["delta"]["latency_ms"] == pytest.approx(
        extract["b"]["latency_ms"] - extract["a"]["latency_ms"], abs=1e-6)
    only_a = [row["a"]["step_name"] for row in result["steps"] if row["b"] is None]
    only_b = [row["b"]["step_name"] for row in result["steps"] if row["a"] is None]
    assert (only_a, only_b) == (["format_report"], ["fact_check"])
    assert len(result["only_in_a"]) == 1 and len(result["only_in_b"]) == 1
    totals = result["totals"]
    assert totals["delta"]["cost_usd"] == pytest.approx(0.001)
    assert totals["delta"]["tokens_input"] == 38 and totals["delta"]["step_count"] == 0
    assert totals["a"]["step_count"] == totals["b"]["step_count"] == 8


def test_repeated_names_pair_by_position_in_the_tree_not_by_global_order(demo):
    result = compare(demo, "x", "y")
    pairs = {(row["a"]["depth"], row["delta"]["tokens_input"])
             for row in result["steps"] if row["a"] and row["b"] and row["step_name"] == "llm"}
    # /loop/llm#0 10->11, /loop/llm#1 20->21, root /llm#0 30->31: all +1, none crossed
    assert pairs == {(1, 1), (0, 1)}
    assert sum(1 for row in result["steps"] if row["a"] and row["b"]) == 4
    only_b = [row["b"] for row in result["steps"] if row["a"] is None]
    assert [(step["step_name"], step["depth"]) for step in only_b] == [("llm", 1)]
    assert result["only_in_a"] == []


def test_rows_come_in_tree_order_with_one_sided_steps_under_their_parent(demo):
    """Depth first in A's order; the step only in B follows its preceding sibling in B,
    inside its parent, even though B started it after A's last root step."""
    result = compare(demo, "x", "y")
    tokens = [(row["step_name"], row["a"] and row["a"]["tokens_input"],
               row["b"] and row["b"]["tokens_input"]) for row in result["steps"]]
    assert tokens == [("loop", 0, 0), ("llm", 10, 11), ("llm", 20, 21), ("llm", None, 40),
                      ("llm", 30, 31)]


def test_steps_that_moved_in_the_tree_still_pair_by_name(demo):
    result = compare(demo, "m1", "m2")
    by_name = {row["step_name"]: row for row in result["steps"]}
    assert by_name["outer"]["match"] == by_name["inner"]["match"] == "name"
    assert by_name["inner"]["delta"]["tokens_input"] == 2
    assert by_name["wrapper"]["a"] is None and by_name["wrapper"]["match"] is None


def test_compare_needs_both_runs_and_names_the_missing_or_unknown_one(demo):
    status, body, _ = call(demo.url, "GET", "/api/compare", {"run_id_a": demo.ids["a"]})
    assert status == 400 and "run_id_b" in body["error"]
    status, body, _ = call(demo.url, "GET", "/api/compare",
                           {"run_id_a": demo.ids["a"], "run_id_b": "1" * 32})
    assert status == 404 and "run_id_b" in body["error"] and "1" * 32 in body["error"]
    status, body, _ = call(demo.url, "GET", "/api/compare",
                           {"run_id_a": "2" * 32, "run_id_b": demo.ids["a"]})
    assert status == 404 and "run_id_a" in body["error"]
