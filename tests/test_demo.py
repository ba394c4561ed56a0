"""demo.py end to end: run it as a user would and check the step trees it stored."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys

import fake_messages_api
import pytest
from conftest import ROOT, wait_until

from traceforge_protocol.home import Home

DEMO = str(ROOT / "demo.py")


def _run_demo(env: dict, *args: str, mock: bool = True) -> subprocess.CompletedProcess:
    if mock:
        env = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
        args = ("--mock", *args)
    result = subprocess.run([sys.executable, DEMO, *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def _steps(query, run_id: str) -> dict:
    rows = query(
        "SELECT step_name, step_id, parent_step_id, pid, status, error_type, tokens_input, "
        "tokens_output, cost_usd FROM steps WHERE run_id = ? ORDER BY started_at", (run_id,))
    keys = ("name", "id", "parent", "pid", "status", "error_type", "tokens_input",
            "tokens_output", "cost")
    steps: dict = {}
    for row in rows:
        step = dict(zip(keys, row))
        steps.setdefault(step["name"], []).append(step)
    return steps


def _runs(query) -> dict:
    rows = query("SELECT run_name, run_id, status, started_at, ended_at, pid FROM runs")
    return {name: dict(id=run_id, status=status, started=started, ended=ended, pid=pid)
            for name, run_id, status, started, ended, pid in rows}


def test_demo_traces_nested_steps_across_processes_and_an_error_recovery(daemon):
    result = _run_demo(daemon.env, "--runs", "1")
    assert "starting one" not in result.stdout  # the fixture's daemon was reachable
    assert f"Open the dashboard: {daemon.http_url}/" in result.stdout

    runs = _runs(daemon.query)
    assert set(runs) == {
        "research: climate change",
        "research (error demo): quantum computing",
        "support triage: Export to CSV fails for large runs",
    }
    research = runs["research: climate change"]
    assert research["status"] == "success"
    steps = _steps(daemon.query, research["id"])

    # The three searches ran in pool worker processes, yet nest under gather_sources.
    (gather,) = steps["gather_sources"]
    searches = steps["web_search"]
    assert len(searches) == 3
    for search in searches:
        assert search["parent"] == gather["id"]
        assert search["pid"] != gather["pid"]
        assert search["status"] == "ok"
    assert gather["parent"] is None and gather["pid"] == research["pid"]

    (summarize,) = steps["summarize"]
    for child in ("draft_summary", "refine_summary"):
        assert [s["parent"] for s in steps[child]] == [summarize["id"]]
    for root in ("extract_facts", "summarize", "fact_check", "format_report"):
        assert steps[root][0]["parent"] is None
    (extract,) = steps["extract_facts"]
    assert abs(extract["tokens_input"] - 112) <= 6 and abs(extract["tokens_output"] - 48) <= 6
    assert extract["cost"] > 0

    # The error demo: a failure mid-pipeline, recorded, and a fallback that recovered.
    error_run = runs["research (error demo): quantum computing"]
    assert error_run["status"] == "error"
    steps = _steps(daemon.query, error_run["id"])
    (summarize,) = steps["summarize"]
    (draft,) = steps["draft_summary"]
    (fallback,) = steps["fallback_summary"]
    assert (draft["status"], draft["error_type"]) == ("error", "MockAPIError")
    assert draft["parent"] == fallback["parent"] == summarize["id"]
    assert fallback["status"] == "ok" and fallback["tokens_output"] > 0
    assert summarize["status"] == "ok"
    assert steps["format_report"][0]["status"] == "ok"

    # The second pipeline ran in another process, at the same time as the research run.
    triage = runs["support triage: Export to CSV fails for large runs"]
    assert triage["pid"] != research["pid"]
    assert triage["started"] < research["ended"] and research["started"] < triage["ended"]
    steps = _steps(daemon.query, triage["id"])
    assert steps["moderate"][0]["cost"] is None  # a local model: unpriced, not $0
    assert steps["draft_reply"][0]["cost"] > 0


def test_with_an_api_key_the_demo_calls_claude_through_the_traced_sdk(daemon):
    pytest.importorskip("anthropic")
    with fake_messages_api.serve() as api:
        env = dict(daemon.env, ANTHROPIC_API_KEY="test", ANTHROPIC_BASE_URL=api.url)
        result = _run_demo(env, "--runs", "1", mock=False)
    assert "Claude via the anthropic SDK" in result.stdout
    assert {r["model"] for r in api.requests} >= {"claude-haiku-4-5", "claude-sonnet-4-6"}

    runs = _runs(daemon.query)
    steps = _steps(daemon.query, runs["research: climate change"]["id"])
    (extract,) = steps["extract_facts"]
    calls = {s["parent"]: s for s in steps["anthropic.messages.create"]}
    call = calls[extract["id"]]  # the SDK call nests under the pipeline step that made it
    assert (call["tokens_input"], call["tokens_output"]) == (25, 12)
    assert call["cost"] == pytest.approx(fake_messages_api.EXPECTED_COST)
    assert extract["tokens_input"] == 0  # tokens live on the call step only: no double count

    steps = _steps(daemon.query, runs["research (error demo): quantum computing"]["id"])
    (draft,) = steps["draft_summary"]
    (fallback,) = steps["fallback_summary"]
    calls = {s["parent"]: s for s in steps["anthropic.messages.create"]}
    assert (draft["status"], calls[draft["id"]]["status"]) == ("error", "error")
    assert calls[draft["id"]]["error_type"] == "NotFoundError"
    assert calls[fallback["id"]]["status"] == "ok"


def test_demo_starts_a_daemon_when_none_is_reachable(short_tmp):
    home = short_tmp / "home"
    env = dict(os.environ, TRACEFORGE_HOME=str(home))
    for name in ("TRACEFORGE_ADDRESS", "TRACEFORGE_TRACEPARENT", "TRACEFORGE_DISABLED",
                 "TRACEFORGE_HTTP"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    pid = None
    try:
        result = _run_demo(env, "--runs", "2", "--http", "127.0.0.1:0")
        assert "starting one in the background" in result.stdout
        state = Home(home).read_state()
        pid = state.pid
        os.kill(pid, 0)  # still running after the demo
        assert f"Open the dashboard: {state.http}/" in result.stdout

        db = sqlite3.connect(f"file:{home / 'traceforge.db'}?mode=ro", uri=True)
        try:
            ((count,),) = db.execute("SELECT COUNT(*) FROM runs").fetchall()
        finally:
            db.close()
        assert count == 6  # two rounds of three runs

        stop = subprocess.run([sys.executable, "-m", "traceforge_daemon", "stop"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=90)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        wait_until(lambda: not _alive(pid), timeout=30, message="the daemon to exit")
    finally:
        if pid is not None and _alive(pid):
            os.kill(pid, 15)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_mock_llm_is_deterministic_and_near_each_steps_typical_figures(monkeypatch):
    spec = importlib.util.spec_from_file_location("traceforge_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, demo)  # dataclasses look their module up
    spec.loader.exec_module(demo)
    llm = demo.MockLLM()
    first = llm.complete("Summarize climate change", model=demo.HAIKU, typical=(112, 48))
    again = llm.complete("Summarize climate change", model=demo.HAIKU, typical=(112, 48))
    other = llm.complete("Summarize fusion energy", model=demo.HAIKU, typical=(112, 48))
    assert first == again
    assert other != first
    assert abs(first.tokens_input - 112) <= 6 and abs(first.tokens_output - 48) <= 6
