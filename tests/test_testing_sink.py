"""traceforge_client.testing: users assert on what their code traced, with no daemon.

Most tests here trace in this process, as a user's test suite would; the ones that need a
clean process (a daemon to prove nothing reaches it, TRACEFORGE_DISABLED) run a program.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from conftest import ROOT

import traceforge_client as tf
from traceforge_client import runtime, testing
from traceforge_protocol import wire


def test_runs_and_steps_come_back_as_plain_objects_with_their_tree():
    @tf.trace_step_decorator(model="claude-haiku-4-5")
    def extract(text: str, limit: int = 3) -> list:
        tf.current_step()["tokens_input"] = 10
        return [text][:limit]

    with testing.capture() as traced:
        with tf.trace_run("research", metadata={"v": 1}):
            with tf.trace_step("search_and_summarize", input_data={"q": "climate"}):
                with tf.trace_step("web_search", input_data={"query": "climate"}) as r:
                    r["output"] = {"count": 2}
                with tf.trace_step("summarize", model="claude-sonnet-4-6",
                                   cost_per_input_token=3e-6,
                                   cost_per_output_token=1.5e-5) as r:
                    r["output"] = "a summary"
                    r["tokens_input"], r["tokens_output"] = 89, 95
                    r["metadata"] = {"temperature": 0}
            extract("some text")

    assert traced.tree() == [("research", [
        ("search_and_summarize", [("web_search", []), ("summarize", [])]),
        ("extract", []),
    ])]
    run = traced.run("research")
    assert (run.status, run.metadata, run.error) == ("success", {"v": 1}, None)
    assert [step.name for step in run.steps] == [
        "search_and_summarize", "web_search", "summarize", "extract"]

    summarize = traced.step("summarize")
    assert summarize.parent is traced.step("search_and_summarize")
    assert summarize.parent.input == {"q": "climate"}
    assert (summarize.output, summarize.model, summarize.metadata) == (
        "a summary", "claude-sonnet-4-6", {"temperature": 0})
    assert (summarize.tokens_input, summarize.tokens_output) == (89, 95)
    assert summarize.cost_usd == pytest.approx(89 * 3e-6 + 95 * 1.5e-5)
    assert (summarize.status, summarize.error, summarize.run) == ("ok", None, run)
    assert summarize.end_ns >= summarize.start_ns and summarize.duration_ms >= 0
    assert traced.step("web_search").output == {"count": 2}
    assert traced.step("web_search").cost_usd == 0.0

    extracted = traced.step("extract")
    assert (extracted.input, extracted.output) == ({"text": "some text"}, ["some text"])
    assert (extracted.model, extracted.tokens_input) == ("claude-haiku-4-5", 10)
    assert traced.dropped == {}


def test_what_is_traced_can_be_read_at_once_even_inside_an_open_step():
    with testing.capture() as traced:
        with tf.trace_step("outer"):
            with tf.trace_step("inner"):
                pass
            assert traced.step("inner").status == "ok"  # no flush by hand
            assert traced.step("outer").status == "running"
            assert traced.run("outer").status == "running"  # a step alone gets a run
        assert traced.step("outer").status == "ok"
        assert traced.run("outer").status == "success"


def test_errors_are_recorded_and_fail_the_run():
    class QuotaExceeded(Exception):
        pass

    with testing.capture() as traced:
        with pytest.raises(QuotaExceeded):
            with tf.trace_run("flaky"):
                with tf.trace_step("call_llm"):
                    raise QuotaExceeded("try again later")
        with tf.trace_run("recovered"):
            try:
                with tf.trace_step("tool"):
                    raise TimeoutError("slow")
            except TimeoutError:
                pass

    failed = traced.step("call_llm")
    assert (failed.status, failed.error_type, failed.error_message) == (
        "error", "QuotaExceeded", "try again later")
    assert failed.error == "QuotaExceeded: try again later"
    assert "Traceback" in failed.traceback and "try again later" in failed.traceback
    assert traced.run("flaky").status == "error"
    assert traced.run("flaky").error == "QuotaExceeded: try again later"
    assert traced.run("recovered").status == "error"  # a failed step fails its run
    assert traced.step("tool").error == "TimeoutError: slow"


def test_asyncio_tasks_and_thread_pools_keep_their_parents():
    async def task(i: int) -> None:
        with tf.trace_step(f"task-{i}"):
            for j in range(2):
                await asyncio.sleep(0)
                with tf.trace_step(f"task-{i}-child-{j}"):
                    await asyncio.sleep(0)

    def job(i: int) -> None:
        with tf.trace_step(f"job-{i}"):
            pass

    async def main() -> None:
        with tf.trace_run("fan-out"):
            with tf.trace_step("gather"):
                await asyncio.gather(*(task(i) for i in range(20)))
            with tf.trace_step("pool"):
                with tf.TracedThreadPoolExecutor(max_workers=4) as pool:
                    list(pool.map(job, range(8)))

    with testing.capture() as traced:
        asyncio.run(main())

    gather = traced.step("gather")
    assert [child.name for child in gather.children] == [f"task-{i}" for i in range(20)]
    for i in range(20):
        assert [c.name for c in traced.step(f"task-{i}").children] == [
            f"task-{i}-child-0", f"task-{i}-child-1"]
    assert sorted(c.name for c in traced.step("pool").children) == sorted(
        f"job-{i}" for i in range(8))
    assert len(traced.steps) == 1 + 20 * 3 + 1 + 8


def test_captures_nest_and_each_restores_where_events_went_before():
    before = runtime.emit
    with testing.capture() as outer:
        with tf.trace_step("in outer"):
            pass
        with testing.capture() as inner:
            with tf.trace_step("in inner"):
                pass
        with tf.trace_step("in outer again"):
            pass
    assert runtime.emit is before
    assert [step.name for step in inner.steps] == ["in inner"]
    assert [step.name for step in outer.steps] == ["in outer", "in outer again"]
    outer.clear()
    assert outer.steps == [] and outer.tree() == []


def test_every_event_is_captured_or_counted_as_dropped():
    with testing.capture(max_queue_events=10) as traced:
        with tf.trace_run("burst"):
            for i in range(500):
                with tf.trace_step("step", input_data={"i": i}):
                    pass
        # an event the daemon would refuse: its batch is refused as it would be there
        assert traced.flush()
        runtime.emit(wire.StepStart(run_id="not-a-run-id", step_id="0" * 16, name="x",
                                    start_ns=1))
    dropped = traced.dropped
    assert set(dropped) <= {"queue_full", "rejected"} and dropped["rejected"] == 1
    assert len(traced.events) + sum(dropped.values()) == 1 + 2 * 500 + 1 + 1


NOTHING_SENT = r'''
import json
import traceforge_client as tf
from traceforge_client import testing

with tf.trace_run("before"):
    pass
assert tf.flush(10)
with testing.capture() as traced:
    tf.init()  # user code configuring TraceForge inside a test: still captured
    with tf.trace_run("inside"):
        with tf.trace_step("step"):
            pass
    assert tf.flush(1) and tf.stats()["acked_events"] == 4
with tf.trace_run("after"):
    pass
assert tf.flush(10)
print(json.dumps(traced.tree()))
'''


def test_nothing_reaches_the_daemon_while_capturing(daemon):
    tree = json.loads(daemon.run_python(NOTHING_SENT).stdout)
    assert tree == [["inside", [["step", []]]]]
    assert sorted(daemon.query("SELECT run_name FROM runs")) == [("after",), ("before",)]
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]
    assert daemon.health()["events_committed"] == 4  # two runs, a start and an end each


DISABLED = r'''
import traceforge_client as tf
from traceforge_client import testing

with testing.capture() as traced:
    with tf.trace_step("seen"):
        pass
with tf.trace_step("not seen"):
    pass
print([step.name for step in traced.steps], tf.stats().get("disabled"))
'''


def test_capture_traces_even_when_tracing_is_disabled_and_disables_it_again_after(short_tmp):
    result = subprocess.run(
        [sys.executable, "-c", DISABLED], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TRACEFORGE_DISABLED": "1",
             "TRACEFORGE_HOME": str(short_tmp)},
    )
    assert result.stdout.strip() == "['seen'] True", result.stderr
