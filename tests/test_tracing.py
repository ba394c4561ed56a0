"""The client API end to end: traced code in a real process, stored by a real daemon.

These run once, in the form of the per-step code this checkout has installed (compiled or
plain Python, traceforge_client/hot_path.py); tests/test_hot_path.py checks that both forms
store the same thing."""

from __future__ import annotations

import json

import pytest

README_EXAMPLE = r'''
import traceforge_client as traceforge
from traceforge_client import trace_run, trace_step, trace_step_decorator

traceforge.init()

def my_search_function(query):
    return [f"{query} result {i}" for i in range(3)]

class Usage:
    input_tokens, output_tokens = 89, 95

class Response:
    content = "a summary"
    usage = Usage()
    model = "claude-sonnet-4-6"

def call_llm(prompt, model):
    return Response()

with trace_run("my pipeline", metadata={"version": "1.0"}) as run_id:
    with trace_step("web_search", input_data={"query": "climate change"}) as r:
        results = my_search_function("climate change")
        r["output"] = {"results": results, "count": len(results)}
    with trace_step(
        "summarize",
        input_data={"result_count": len(results)},
        model="claude-sonnet-4-6",
        cost_per_input_token=3e-6,
        cost_per_output_token=1.5e-5,
    ) as r:
        response = call_llm("prompt", model="claude-sonnet-4-6")
        r["output"] = response.content
        r["tokens_input"] = response.usage.input_tokens
        r["tokens_output"] = response.usage.output_tokens
        r["model"] = response.model
    with trace_step("format_report", input_data={"draft_len": 9}) as r:
        with trace_step("validate", input_data={"stage": "pre-format"}) as r2:
            r2["output"] = {"valid": True}
        r["output"] = "final report"

    @trace_step_decorator(model="claude-haiku-4-5-20251001", cost_per_input_token=3e-7)
    def extract_facts(text: str) -> list:
        return [text]

    extract_facts("some text")

    try:
        with trace_step("flaky_tool", input_data={"attempt": 1}):
            raise TimeoutError("search backend timed out")
    except TimeoutError:
        pass

assert traceforge.flush(10)
print(run_id)
'''


def stored_steps(daemon, run_id):
    rows = daemon.query(
        "SELECT step_id, parent_step_id, step_name, model, input_data, output_data, tokens_input,"
        " tokens_output, cost_usd, status, error, error_type, traceback, latency_ms, started_at,"
        " ended_at, pid FROM steps WHERE run_id = ? ORDER BY started_at",
        (run_id,),
    )
    keys = ("step_id", "parent", "name", "model", "input", "output", "tin", "tout", "cost",
            "status", "error", "error_type", "traceback", "latency_ms", "started", "ended", "pid")
    return [dict(zip(keys, row)) for row in rows]


def test_the_readme_example_is_stored_with_tree_tokens_cost_and_errors(daemon):
    run_id = daemon.run_python(README_EXAMPLE).stdout.strip()
    assert len(run_id) == 32 and int(run_id, 16)

    steps = {s["name"]: s for s in stored_steps(daemon, run_id)}
    assert set(steps) == {"web_search", "summarize", "format_report", "validate", "extract_facts",
                          "flaky_tool"}
    by_id = {s["step_id"]: s for s in steps.values()}
    assert all(len(s["step_id"]) == 16 for s in steps.values())
    assert steps["validate"]["parent"] == steps["format_report"]["step_id"]
    roots = [s["name"] for s in steps.values() if s["parent"] is None]
    assert sorted(roots) == ["extract_facts", "flaky_tool", "format_report", "summarize",
                             "web_search"]
    assert all(s["parent"] is None or s["parent"] in by_id for s in steps.values())

    summarize = steps["summarize"]
    assert (summarize["tin"], summarize["tout"]) == (89, 95)
    assert summarize["cost"] == pytest_approx(89 * 3e-6 + 95 * 1.5e-5)
    assert summarize["model"] == "claude-sonnet-4-6"
    assert json.loads(summarize["input"]) == {"result_count": 3}
    assert json.loads(summarize["output"]) == "a summary"
    assert json.loads(steps["web_search"]["output"])["count"] == 3
    assert steps["web_search"]["cost"] == 0.0  # a tool call with no tokens costs nothing

    facts = steps["extract_facts"]
    assert json.loads(facts["input"]) == {"text": "some text"}
    assert json.loads(facts["output"]) == ["some text"]
    assert facts["model"] == "claude-haiku-4-5-20251001"

    flaky = steps["flaky_tool"]
    assert flaky["status"] == "error"
    assert flaky["error"] == "TimeoutError: search backend timed out"
    assert flaky["error_type"] == "TimeoutError"
    assert "Traceback" in flaky["traceback"] and "search backend timed out" in flaky["traceback"]
    for step in steps.values():
        assert step["ended"] >= step["started"]
        assert step["latency_ms"] >= 0
        if step["name"] != "flaky_tool":
            assert step["status"] == "ok" and step["error"] is None

    [(name, status, metadata, ended)] = daemon.query(
        "SELECT run_name, status, metadata, ended_at FROM runs WHERE run_id = ?", (run_id,)
    )
    assert name == "my pipeline"
    assert status == "error"  # a step failed inside it, even though the run recovered
    assert json.loads(metadata) == {"version": "1.0"}
    assert ended is not None


def pytest_approx(value):
    return pytest.approx(value, rel=1e-9)


def test_exception_is_reraised_unchanged_and_run_marked_failed(daemon):
    code = r'''
import traceforge_client as tf
class Custom(Exception):
    pass
original = Custom("kept as is")
try:
    with tf.trace_run("failing") as run_id:
        with tf.trace_step("outer"):
            with tf.trace_step("inner"):
                raise original
except Custom as caught:
    assert caught is original
tf.flush(10)
print(run_id)
'''
    run_id = daemon.run_python(code).stdout.strip()
    steps = {s["name"]: s for s in stored_steps(daemon, run_id)}
    assert steps["inner"]["status"] == steps["outer"]["status"] == "error"
    assert steps["inner"]["error"] == "Custom: kept as is"
    [(status, error)] = daemon.query("SELECT status, error FROM runs WHERE run_id = ?", (run_id,))
    assert status == "error" and error == "Custom: kept as is"


def test_step_outside_any_run_gets_a_run_of_its_own(daemon):
    code = r'''
import traceforge_client as tf
with tf.trace_step("lonely", input_data={"x": 1}) as r:
    with tf.trace_step("child"):
        pass
    r["output"] = 2
tf.flush(10)
'''
    daemon.run_python(code)
    [(run_id, run_name, status)] = daemon.query("SELECT run_id, run_name, status FROM runs")
    assert run_name == "lonely" and status == "success"
    steps = {s["name"]: s for s in stored_steps(daemon, run_id)}
    assert steps["child"]["parent"] == steps["lonely"]["step_id"]


def test_async_decorator_times_the_awaited_coroutine(daemon):
    code = r'''
import asyncio
import traceforge_client as tf

@tf.trace_step_decorator(step_name="slow_call")
async def slow_call(delay):
    await asyncio.sleep(delay)
    return "done"

async def main():
    with tf.trace_run("async"):
        coroutine = slow_call(0.2)     # created now...
        await asyncio.sleep(0.5)       # ...awaited later: only the await counts
        assert await coroutine == "done"

asyncio.run(main())
tf.flush(10)
'''
    daemon.run_python(code)
    [(latency, output, inputs)] = daemon.query(
        "SELECT latency_ms, output_data, input_data FROM steps WHERE step_name = 'slow_call'"
    )
    assert 190 <= latency < 650  # counting from creation would give at least 700
    assert json.loads(output) == "done"
    assert json.loads(inputs) == {"delay": 0.2}


def test_disabled_makes_every_call_a_no_op(daemon):
    code = r'''
import traceforge_client as tf
@tf.trace_step_decorator
def f(x):
    return x * 2
with tf.trace_run("invisible") as run_id:
    with tf.trace_step("nothing") as r:
        r["output"] = f(21)
assert r["output"] == 42 and len(run_id) == 32
assert tf.flush(1)
assert tf.stats()["disabled"] and tf.stats()["hot_path"] in ("compiled", "python")
'''
    env = {**daemon.env, "TRACEFORGE_DISABLED": "1"}
    daemon.run_python(code, env=env)
    # a second, enabled process proves the daemon was there to receive anything
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('visible'):\n  pass\n"
                      "tf.flush(10)")
    assert daemon.query("SELECT run_name FROM runs") == [("visible",)]
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]


def test_unserialisable_and_huge_payloads_are_stored_not_fatal(daemon):
    code = r'''
import traceforge_client as tf
class Opaque:
    def __repr__(self):
        return "<Opaque thing>"
with tf.trace_run("payloads"):
    with tf.trace_step("odd", input_data={"obj": Opaque(), 1: "int key"}) as r:
        r["output"] = "x" * (3 * 1024 * 1024)
tf.flush(10)
'''
    daemon.run_python(code)
    [(inputs, output)] = daemon.query(
        "SELECT input_data, output_data FROM steps WHERE step_name = 'odd'"
    )
    assert "Opaque thing" in inputs
    truncated = json.loads(output)
    assert truncated["_traceforge_truncated"] is True
    assert truncated["original_bytes"] > 3 * 1024 * 1024


def test_awkward_values_from_user_code_never_cost_the_batch(daemon):
    code = r'''
import traceforge_client as tf
class Model:
    def __str__(self):
        return "custom-model"
with tf.trace_run("x" * 2000):
    with tf.trace_step("y" * 2000):
        pass
    with tf.trace_step("") as r:
        r["model"] = Model()
        r["tokens_input"] = "12"
        r["cost_usd"] = float("inf")
    with tf.trace_step("huge counts") as r:  # beyond what SQLite holds, or negative
        r["tokens_input"], r["tokens_output"] = 2**63, -5
        r["tokens_cache_read"], r["tokens_cache_write"] = 2**70, 3
    try:
        with tf.trace_step("surrogate"):
            raise ValueError("bad \udce9 byte " + "z" * 200_000)
    except ValueError:
        pass
    with tf.trace_step("after"):
        pass
assert tf.flush(10), tf.stats()
print(tf.stats()["dropped_total"])
'''
    result = daemon.run_python(code)
    rows = dict(daemon.query("SELECT step_name, status FROM steps"))
    assert rows == {"y" * 512: "ok", "unnamed": "ok", "after": "ok", "surrogate": "error",
                    "huge counts": "ok"}
    assert daemon.query(
        "SELECT tokens_input, tokens_output, tokens_cache_read, tokens_cache_write FROM steps "
        "WHERE step_name = 'huge counts'") == [(2**63 - 1, 0, 2**63 - 1, 3)]
    [(model, tokens, cost)] = daemon.query(
        "SELECT model, tokens_input, cost_usd FROM steps WHERE step_name = 'unnamed'")
    assert (model, tokens, cost) == ("custom-model", 12, None)
    [(run_name,)] = daemon.query("SELECT run_name FROM runs")
    assert run_name == "x" * 512
    [(error,)] = daemon.query("SELECT error FROM steps WHERE step_name = 'surrogate'")
    assert error.startswith("ValueError: bad ? byte zzz") and "characters cut" in error
    assert result.stdout.strip() == "{}"  # nothing dropped
