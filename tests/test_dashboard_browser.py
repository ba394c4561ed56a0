"""The dashboard's waterfall in a real headless browser (Debian's Chromium, driven by
Playwright) against a real daemon holding real traced runs: bars, depth, errors and
folding; a 50,000-step run reachable by scrolling and by filter with few rows in the DOM;
live runs and growing bars without refetching the run; catching up after a reconnect; the
keyboard; the layout math and formats. The fixtures ``dash`` and ``browser`` are in
conftest.py, shared with tests/test_dashboard_views.py and tests/test_dashboard_pages.py."""

from __future__ import annotations

import json
import re
import socket

import pytest

from api_support import get
from conftest import DaemonProcess
from dashboard_support import (detail_title, new_page, row_named, rows, visit,
                               wait_rows)



# ---- the waterfall ----


def test_the_waterfall_has_one_bar_per_step_in_time_order_by_depth_and_offset(dash, page):
    detail = get(dash.url, f"/api/runs/{dash.ids['a']}")
    visit(page, dash, f"run/{dash.ids['a']}")
    wait_rows(page, 5)
    shown = rows(page).evaluate_all("""nodes => nodes.map(n => {
        const track = n.querySelector('.wf-track').getBoundingClientRect();
        const bar = n.querySelector('.wf-bar').getBoundingClientRect();
        return {id: n.dataset.stepId, top: n.getBoundingClientRect().top,
                level: Number(n.getAttribute('aria-level')),
                indent: parseFloat(getComputedStyle(n.querySelector('.wf-name')).paddingLeft),
                left: (bar.left - track.left) / track.width * 100,
                width: bar.width / track.width * 100};
    }).sort((a, b) => a.top - b.top)""")
    steps = {s["step_id"]: s for s in detail["steps"]}
    assert [steps[r["id"]]["step_name"] for r in shown] == [
        "plan", "think", "lookup", "answer", "polish"]
    starts = [steps[r["id"]]["started_at"] for r in shown]
    assert starts == sorted(starts)
    assert [r["level"] - 1 for r in shown] == [steps[r["id"]]["depth"] for r in shown]
    assert shown[1]["indent"] == shown[2]["indent"] > shown[0]["indent"] == shown[3]["indent"]
    total = detail["timeline"]["duration_ms"]
    for r in shown:
        step = steps[r["id"]]
        assert r["left"] == pytest.approx(step["offset_ms"] / total * 100, abs=0.5)
        assert r["width"] == pytest.approx(step["latency_ms"] / total * 100, abs=0.5)
    row_named(page, "think").locator(".wf-bar").hover()
    tip = page.locator(".tooltip")
    tip.wait_for()
    text = tip.inner_text()
    assert "think" in text and "claude-haiku-4-5" in text and "100 in · 50 out" in text
    assert re.search(r"\d+(\.\d+)? ms", text) and "null" not in text
    flat = page.get_by_role("link", name="Flat JSONL")
    assert flat.get_attribute("href") == f"/api/runs/{dash.ids['a']}/export?format=flat"
    answer = page.request.get(dash.url + flat.get_attribute("href"))
    assert answer.ok and len(answer.text().splitlines()) == 5  # one span per line
    otlp = page.get_by_role("link", name="Export OTLP")
    answer = page.request.get(dash.url + otlp.get_attribute("href"))
    spans = [span for line in answer.text().splitlines()
             for resource in json.loads(line)["resourceSpans"]
             for scope in resource["scopeSpans"] for span in scope["spans"]]
    assert answer.ok and len(spans) == 5
    # ticks: "0" at the left edge, then evenly spaced labels
    ticks = page.locator(".wf-axis .wf-tick").all_inner_texts()
    assert ticks[0] == "0" and len(ticks) >= 3 and all(t.endswith("ms") for t in ticks[1:])


def test_the_error_step_is_marked_and_collapse_and_expand_work(dash, page):
    visit(page, dash, f"run/{dash.ids['errors']}")
    wait_rows(page, 3)
    failed = row_named(page, "fetch")
    assert "st-error" in failed.get_attribute("class")
    assert failed.locator(".wf-icon").inner_text() == "✕"  # not colour alone
    assert failed.locator(".wf-bar").evaluate("n => getComputedStyle(n).backgroundColor") == \
        "rgb(242, 85, 90)"
    outer = row_named(page, "outer")
    assert outer.get_attribute("aria-expanded") == "true"
    outer.locator(".wf-toggle").click()
    wait_rows(page, 2)
    assert row_named(page, "outer").get_attribute("aria-expanded") == "false"
    page.get_by_role("button", name="Expand all").click()
    wait_rows(page, 3)
    page.get_by_role("button", name="Collapse all").click()
    wait_rows(page, 2)
    page.locator(".wf-level").select_option("2")
    wait_rows(page, 3)
    # the detail: error type and message, the traceback as lines, times as dates
    row_named(page, "fetch").click()
    assert detail_title(page).inner_text() == "fetch"
    error = page.locator(".detail-error")
    error.wait_for()
    assert "ConnectionError" in error.inner_text() and "upstream timed out" in error.inner_text()
    lines = page.locator(".traceback > div").all_inner_texts()
    assert any(line.startswith("Traceback") for line in lines) and len(lines) > 3
    assert not any("\\n" in line for line in lines)
    facts = page.locator(".facts").inner_text()
    assert re.search(r"Start\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", facts)
    assert "pid " in facts


def test_the_keyboard_moves_folds_opens_and_lists_its_keys(dash, page):
    visit(page, dash, f"run/{dash.ids['a']}")
    wait_rows(page, 5)
    page.locator(".wf-body").focus()
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.dataset.stepId")
    assert focused == dash.ids["a_think"]
    page.keyboard.press("ArrowLeft")  # a leaf: to its parent
    assert page.evaluate("document.activeElement.dataset.stepId") == dash.ids["a_plan"]
    page.keyboard.press("ArrowLeft")  # the parent: closes
    wait_rows(page, 3)
    page.keyboard.press("ArrowRight")
    wait_rows(page, 5)
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    assert detail_title(page).inner_text() == "polish"
    assert f"step={dash.ids['a_polish']}" in page.url
    page.keyboard.press("[")
    wait_rows(page, 3)
    page.keyboard.press("]")
    wait_rows(page, 5)
    page.keyboard.press("?")
    help_box = page.locator("dialog#help")
    help_box.wait_for()
    assert "collapse all" in help_box.inner_text() and "next / previous failed step" in help_box.inner_text()
    page.keyboard.press("Escape")
    help_box.wait_for(state="detached")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.classList.contains('wf-filter')")


def test_a_fifty_thousand_step_run_is_reachable_by_scrolling_and_by_filter(dash, page):
    visit(page, dash, f"run/{dash.big}")
    wait_rows(page)
    body = page.locator(".wf-body")
    assert body.get_attribute("aria-rowcount") == "50000"
    assert page.locator(".wf-row").count() < 120  # virtual: only what is in view
    body.evaluate("n => { n.scrollTop = n.scrollHeight; }")
    last = row_named(page, "the_last_step")
    last.wait_for()
    assert int(last.get_attribute("aria-rowindex")) == 50_000
    last.click()
    assert detail_title(page).inner_text() == "the_last_step"
    box = page.locator("#detail").bounding_box()
    viewport = page.viewport_size
    assert box["y"] >= 0 and box["y"] + 40 < viewport["height"] and box["x"] < viewport["width"]
    assert detail_title(page).is_visible()
    assert page.locator(".wf-row").count() < 120

    body.evaluate("n => { n.scrollTop = 0; }")
    page.locator(".wf-filter").fill("the_last")
    wait_rows(page, 2)  # the match and its batch
    assert "1 of 50,000 steps match" in page.locator(".wf-count").inner_text()
    assert "context" in rows(page).nth(0).get_attribute("class")
    page.locator(".wf-filter").press("Enter")
    page.wait_for_function("document.querySelector('.wf-row.selected .wf-label')?.textContent === 'the_last_step'")
    assert "filter=the_last" in page.url


def test_a_new_run_appears_live_its_running_bar_grows_and_the_run_is_not_refetched(dash, page):
    fetched = []
    page.on("request", lambda r: "/api/" in r.url and fetched.append(r.url))
    visit(page, dash, "runs")
    page.locator("#runs tbody tr").first.wait_for()
    page.wait_for_function("document.querySelector('#live').dataset.state === 'live'")
    process = dash.start_live()
    try:
        run_id = process.stdout.readline().strip()
        row = page.locator(f"#runs tbody tr[data-run-id='{run_id}']")
        row.wait_for()  # no reload: it came over /api/events
        assert "running" in row.inner_text()
        row.locator("a").first.click()
        wait_rows(page, 1)
        slow = row_named(page, "slow_step")
        assert "st-running" in slow.get_attribute("class")
        # the bar's length in ms: its share of the track times the axis it is drawn on
        width = lambda: slow.evaluate("""n => {
            const bar = n.querySelector('.wf-bar').getBoundingClientRect();
            const track = n.querySelector('.wf-track').getBoundingClientRect();
            return bar.width / track.width * Number(n.closest('.wf-body').dataset.totalMs);
        }""")
        first = width()
        page.wait_for_timeout(700)
        assert width() > first + 300  # grows while it runs (ms)
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "ended"
        wait_rows(page, 21)
        page.wait_for_function("!document.querySelector('.wf-row.st-running')")
        page.locator(".run-head .badge.st-success").wait_for()
        ended = width()
        page.wait_for_timeout(600)
        assert width() == pytest.approx(ended, rel=0.01)  # stopped growing when it ended
        assert "21" in page.locator(".run-head").inner_text()
    finally:
        process.kill()
        process.wait()
    whole_run = [u for u in fetched if f"/api/runs/{run_id}" in u and "replay_of" not in u]
    assert len(whole_run) == 1, whole_run  # fetched once; every later event updated in place


def test_after_a_reconnect_the_page_catches_up_without_a_reload(browser, short_tmp):
    with socket.socket() as probe:  # one port for both lives of the daemon
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = DaemonProcess(short_tmp / "home", ("--http", f"127.0.0.1:{port}"))
    daemon.home.mkdir(parents=True)
    daemon.start()
    page = new_page(browser)
    stream_open = {"yes": True}
    page.route("**/api/events*", lambda route: route.continue_() if stream_open["yes"]
               else route.abort())
    try:
        daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('before'):\n"
                          "    pass\nassert tf.flush(10)\n")
        page.goto(daemon.http_url + "/#/runs")
        page.locator("#runs tbody tr", has_text="before").wait_for()
        page.wait_for_function("document.querySelector('#live').dataset.state === 'live'")
        stream_open["yes"] = False
        assert daemon.stop() == 0  # the stream ends; reconnecting fails while we say so
        page.wait_for_function("document.querySelector('#live').dataset.state !== 'live'")
        daemon.start()
        daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('while away'):\n"
                          "    pass\nassert tf.flush(10)\n")
        page.wait_for_timeout(500)
        assert page.locator("#runs tbody tr", has_text="while away").count() == 0
        stream_open["yes"] = True  # the next retry connects: the page refetches what it shows
        page.locator("#runs tbody tr", has_text="while away").wait_for()
        assert page.locator("#live").inner_text() == "live"
    finally:
        page.context.close()
        daemon.stop()
    assert not [e for e in page.errors if "ERR_FAILED" not in e], page.errors


def test_the_layout_math_and_the_formats(dash, page):
    visit(page, dash, "runs")
    page.locator("#runs tbody tr").first.wait_for()
    got = page.evaluate("""async () => {
        const M = await import('/static/js/model.js');
        const F = await import('/static/js/format.js');
        const answer = {run: {status: 'success'}, timeline: {start: 100, duration_ms: 10},
          count: 4, names: ['root', 'child', 'leaf'], models: ['m'], statuses: ['ok', 'error', 'running'],
          steps: {step_id: ['a', 'b', 'c', 'd'], parent: [-1, 0, 1, -1], name: [0, 1, 2, 0],
                  model: [-1, 0, -1, -1], status: [0, 1, 0, 2], offset_ms: [0, 1, 2, 6],
                  latency_ms: [5, 2, 0.5, null], tokens_input: [0, 10, 0, 0],
                  tokens_output: [0, 5, 0, 0], tokens_cache_read: [0, 0, 0, 0],
                  tokens_cache_write: [0, 0, 0, 0], cost_usd: [0, null, 0, 0]},
          orphans: [], errors: [{index: 1, error_type: 'E', error: 'E: x'}]};
        const m = M.buildRun(answer);
        const all = Array.from(M.flatten(m));
        m.steps[1].closed = true;
        const folded = Array.from(M.flatten(m));
        const keep = M.matches(m, M.parseFilter('leaf')).keep;
        const filtered = Array.from(M.flatten(m, keep));
        M.applyStep(m, {step_id: 'e', parent_step_id: 'a', step_name: 'late', model: null,
          status: 'running', started_at: 100.003, latency_ms: null, tokens_input: 0,
          tokens_output: 0, tokens_cache_read: 0, tokens_cache_write: 0, cost_usd: 0,
          error_type: null, error: null});
        m.steps[1].closed = false;
        return {all, folded, filtered, depths: m.steps.map(s => s.depth),
          live: Array.from(M.flatten(m)),
          ticks: M.ticks(1000, 500, 90).ticks, ticks2: M.ticks(3.7, 400, 90),
          labels: [M.tickLabel(250, 250), M.tickLabel(1500, 500), M.tickLabel(0.4, 0.2)],
          bar: M.bar(m.steps[1], 10, 0), running: M.bar(m.steps[3], 10, 8),
          errorFilter: M.matches(m, M.parseFilter('status:error')).count,
          durFilter: M.matches(m, M.parseFilter('dur>=2ms')).count,
          tokFilter: M.matches(m, M.parseFilter('tok>10 model:m')).count,
          totals: m.totals,
          fmt: [F.duration(0.42), F.duration(1234), F.duration(125000), F.cost(0), F.cost(null),
                F.cost(0.000183), F.cost(12.346), F.runCost(0.5, 2), F.runCost(null, 3),
                F.tokens(12345), F.python({a: [true, null, "x\\ny"]})]};
    }""")
    assert got["all"] == [0, 1, 2, 3]
    assert got["folded"] == [0, 1, 3]
    assert got["filtered"] == [0, 1, 2]  # the match and its ancestors
    assert got["depths"] == [0, 1, 2, 0, 1]
    assert got["live"] == [0, 1, 2, 4, 3]  # the late child, in start order under its parent
    assert got["ticks"] == [0, 200, 400, 600, 800, 1000]
    assert got["ticks2"]["step"] == 1 and got["ticks2"]["ticks"] == [0, 1, 2, 3]
    assert got["labels"] == ["250 ms", "1.5 s", "0.4 ms"]
    assert got["bar"] == {"left": 10, "width": 20}
    assert got["running"] == {"left": 60, "width": 20}  # a running bar reaches now
    assert (got["errorFilter"], got["durFilter"], got["tokFilter"]) == (1, 2, 1)
    assert got["totals"]["steps"] == 5 and got["totals"]["running"] == 2
    assert got["fmt"] == ["0.42 ms", "1.23 s", "2 min 05 s", "$0", "unpriced", "$0.000183",
                          "$12.35", "$0.5 + 2 unpriced", "unpriced (3)", "12.3k",
                          '{\n    "a": [\n        True,\n        None,\n        "x\\ny",\n    ],\n}']
