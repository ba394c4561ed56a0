"""The dashboard in a real headless browser (Debian's Chromium, driven by Playwright) against
a real daemon holding real traced runs: the waterfall's bars, depth, errors and folding; a
50,000-step run reachable by scrolling and by filter with few rows in the DOM; live runs and
growing bars without refetching the run; compare, replay, tokens, search, stats; deep links;
the keyboard; a 401 sends the user to the login page. Screenshots of every view in both
themes and at 800 px go to $TRACEFORGE_SCREENSHOTS (or a temporary directory)."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from api_support import get
from conftest import DaemonProcess
from dashboard_support import CHROMIUM, DashboardDaemon

EXPECT_MS = 10_000


@pytest.fixture(scope="module")
def dash():
    populated = DashboardDaemon()
    yield populated
    populated.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run should have installed it")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


def new_page(browser, width=1280, height=800, theme="dark"):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme=theme)
    context.set_default_timeout(EXPECT_MS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    return page


@pytest.fixture
def page(browser):
    opened = new_page(browser)
    yield opened
    opened.context.close()
    assert not opened.errors, opened.errors


def visit(page, dash, route):
    page.goto(f"{dash.url}/#/{route}")


def rows(page):
    return page.locator(".wf-body .wf-row:not([hidden])")


def wait_rows(page, count=None):
    rows(page).first.wait_for()
    if count is not None:
        page.wait_for_function(
            f"document.querySelectorAll('.wf-body .wf-row:not([hidden])').length === {count}")


def row_named(page, name):
    return rows(page).filter(has=page.locator(".wf-label", has_text=re.compile(f"^{name}$")))


def detail_title(page):
    return page.locator("#detail-title")


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


def test_the_compare_view_colours_the_deltas_of_two_known_runs(dash, page):
    visit(page, dash, f"compare?a={dash.ids['a']}&b={dash.ids['b']}")
    page.locator(".cmp-body .cmp-row").first.wait_for()
    think = page.locator(".cmp-body .cmp-row[data-step='think']")
    answer = page.locator(".cmp-body .cmp-row[data-step='answer']")
    cells = lambda row: row.locator("span.delta")
    for cell in cells(think).all():  # time, tokens, cost: all better in B
        assert "better" in cell.get_attribute("class") and cell.inner_text().startswith("▼ −")
        assert cell.evaluate("n => getComputedStyle(n).color") == "rgb(63, 185, 80)"
    for cell in cells(answer).all():
        assert "worse" in cell.get_attribute("class") and cell.inner_text().startswith("▲ +")
        assert cell.evaluate("n => getComputedStyle(n).color") == "rgb(248, 81, 73)"
    assert cells(think).nth(1).inner_text() == "▼ −30"
    assert cells(answer).nth(1).inner_text() == "▲ +110"
    assert "only in A" in page.locator(".cmp-row.only-a").inner_text()
    assert "polish" in page.locator(".cmp-row.only-a").inner_text()
    assert "verify" in page.locator(".cmp-row.only-b").inner_text()
    cost = page.locator(".cmp-totals tr[data-figure='cost_usd'] .delta")
    assert "worse" in cost.get_attribute("class") and cost.inner_text() == "▲ +$0.001"


def test_compare_with_picks_the_other_run_from_a_dialog_same_name_first(dash, page):
    visit(page, dash, f"run/{dash.ids['a']}")
    wait_rows(page, 5)
    page.get_by_role("button", name="Compare with…").click()
    first = page.locator("dialog.picker .picker-run").first
    first.wait_for()
    assert first.get_attribute("data-run-id") == dash.ids["b"]  # the other "agent" run
    first.click()
    page.locator(".cmp-body .cmp-row").first.wait_for()
    assert f"a={dash.ids['a']}" in page.url and f"b={dash.ids['b']}" in page.url


def test_compare_is_picked_from_the_run_list(dash, page):
    visit(page, dash, "runs?q=agent")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 2")
    for box in page.locator("#runs tbody input[type=checkbox]").all():
        box.check()
    page.get_by_role("button", name="Compare 2 runs").click()
    page.locator(".cmp-body .cmp-row").first.wait_for()
    assert f"a={dash.ids['a']}" in page.url and f"b={dash.ids['b']}" in page.url


def test_replay_round_trips_an_edited_input_and_the_replay_links_to_its_original(dash, page):
    step = dash.ids["a_think"]
    visit(page, dash, f"replay/{step}")
    editor = page.locator("textarea.replay-input")
    assert json.loads(editor.input_value()) == {"prompt": "think: step one\nthen step two"}
    editor.fill('{"prompt": "edited"')
    assert "Not valid JSON" in page.locator(".replay-form .err").inner_text()
    editor.fill('{"prompt": "edited", "temperature": 0}')
    page.get_by_role("button", name="Get replay inputs").click()
    page.locator(".snippet").wait_for()
    assert "edited" in page.locator(".replay-inputs").inner_text()
    code = page.locator(".snippet").inner_text()
    assert '"prompt": "edited"' in code and '"temperature": 0' in code and step in code
    result = dash.daemon.run_python(code.replace(
        "raise NotImplementedError", "return {'echo': input_data}"))
    replay_id = result.stdout.split("replay run:")[1].strip()
    link = page.locator(f".replay-list a.replay-run[href*='{replay_id}']")
    link.wait_for()  # listed live, from the replay's run_start
    link.click()
    banner = page.locator(".run-links .banner").first
    banner.wait_for()
    assert "Replay of step think" in banner.inner_text()
    assert dash.ids["a"] in banner.locator("a.replay-original").get_attribute("href")
    wait_rows(page, 1)
    row_named(page, "think").click()
    page.locator(".payload .jv").first.wait_for()
    assert "edited" in page.locator(".payload").first.inner_text()
    banner.get_by_role("link", name="Compare with the original").click()
    paired = page.locator(".cmp-body .cmp-row[data-step='think']")
    paired.wait_for()
    assert paired.locator(":scope > span").nth(1).inner_text() == "replay"
    # and the original run links to its replay
    visit(page, dash, f"run/{dash.ids['a']}")
    page.locator(f".run-links a.replay-link[href*='{replay_id}']").wait_for()


def test_the_tokens_view_shows_bars_per_step_and_totals_that_match_the_api(dash, page):
    run = get(dash.url, "/api/runs", q="local model")["runs"][0]
    visit(page, dash, f"run/{dash.ids['a']}?tab=tokens")
    page.locator(".tk-row").first.wait_for()
    a = get(dash.url, f"/api/runs/{dash.ids['a']}")["run"]
    bars = page.locator(".tk-row:not([hidden])")
    assert bars.count() == 3  # think, answer, polish: no bar for the steps without tokens
    assert page.locator("[data-figure=tk-total-in]").inner_text() == f"{a['tokens_input']:,}"
    assert page.locator("[data-figure=tk-total-out]").inner_text() == f"{a['tokens_output']:,}"
    assert page.locator("[data-figure=tk-total-cost]").inner_text() == f"${a['cost_usd']:.3g}"
    shares = bars.locator(".tk-share").all_inner_texts()
    assert sum(float(s.split()[0]) for s in shares) == pytest.approx(100, abs=1)
    widths = bars.first.locator(".tk-bars i").evaluate_all("ns => ns.map(n => n.offsetWidth)")
    assert all(w > 0 for w in widths)
    # an unpriced model reads "unpriced", and cache tokens are counted
    visit(page, dash, f"run/{run['run_id']}?tab=tokens")
    page.locator(".tk-row").first.wait_for()
    assert page.locator("[data-figure=tk-total-cost]").inner_text() == "unpriced (1)"
    assert page.locator("[data-figure=tk-total-cache]").inner_text() == "300 · 40"
    assert "unpriced" in page.locator(".tk-row .tk-cost").first.inner_text()


def test_a_deep_link_opens_its_step_after_a_reload_and_history_keeps_the_place(dash, page):
    step = dash.ids["a_answer"]
    visit(page, dash, f"run/{dash.ids['a']}?step={step}")
    assert detail_title(page).inner_text() == "answer"
    page.locator(".payload .jv").first.wait_for()
    assert "then step two" in page.locator(".payload").first.inner_text()  # newline kept
    page.reload()
    assert detail_title(page).inner_text() == "answer"
    assert "selected" in row_named(page, "answer").get_attribute("class")
    visit(page, dash, "runs?q=agent")
    page.locator(f"#runs tbody tr[data-run-id='{dash.ids['b']}'] a").first.click()
    wait_rows(page, 5)
    page.locator("#detail .detail-empty").wait_for()  # nothing of run A's step is left
    row_named(page, "think").click()
    assert detail_title(page).inner_text() == "think"
    page.go_back()
    page.locator("#view-runs:not([hidden])").wait_for()
    page.go_forward()
    page.wait_for_function("document.querySelector('#detail-title')?.textContent === 'think'")
    assert f"step={dash.ids['b_think']}" in page.url


def test_the_run_list_pages_filters_and_keeps_its_filters_in_the_url(dash, page):
    visit(page, dash, "runs")
    body = page.locator("#runs tbody")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length >= 100")
    assert body.locator("tr").count() == 100
    page.locator("#view-runs button.load-more").scroll_into_view_if_needed()
    body.locator("tr", has_text="bulk 000").wait_for()  # the oldest: every run is reachable
    page.locator("input[name=q]").fill("agent")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 2")
    assert "q=agent" in page.url
    page.locator("select[name=status]").select_option("error")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 0")
    page.locator("input[name=q]").fill("")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 1")
    assert "flaky fetch" in body.inner_text()
    page.reload()
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 1")
    assert page.locator("select[name=status]").input_value() == "error"
    started = body.locator("td.started").first.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", started)


def test_search_finds_steps_across_runs_and_links_each_to_its_step(dash, page):
    visit(page, dash, "search?name=think&min_tokens=140")
    page.locator("#search-results tbody tr").first.wait_for()
    found = page.locator("#search-results tbody tr")
    assert found.count() == 1 and found.get_attribute("data-step-id") == dash.ids["a_think"]
    visit(page, dash, "search?error=true")
    failed = page.locator(f"#search-results tbody tr[data-step-id='{dash.ids['failed_step']}']")
    failed.locator("a.step-link").click()
    assert detail_title(page).inner_text() == "fetch"


def test_stats_show_each_step_name_and_the_client_drop_counts(dash, page):
    visit(page, dash, "stats")
    table = page.locator("#stats-table")
    table.locator("tbody tr").first.wait_for()
    lookup = table.locator("tbody tr", has_text="lookup")
    assert lookup.locator("td").nth(1).inner_text() == "2"
    assert page.locator("#client-drops").inner_text() == "none"
    fetch = table.locator("tbody tr", has=page.locator("a", has_text=re.compile("^fetch$")))
    assert fetch.locator("td").nth(4).inner_text() == "100.0 %"


def test_a_401_sends_the_user_to_the_login_page_with_the_way_back(dash, browser):
    page = new_page(browser)
    page.route("**/api/**", lambda route: route.fulfill(
        status=401, content_type="application/json",
        body='{"error": "this daemon needs its token", "status": 401}'))
    page.route("**/login*", lambda route: route.fulfill(status=200, content_type="text/html",
                                                         body="<p>login</p>"))
    visit(page, dash, f"run/{dash.ids['a']}")
    page.wait_for_url(re.compile(r"/login\?next="))
    assert "%23%2Frun%2F" in page.url  # the run to come back to
    page.context.close()


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


# ---- screenshots ----

VIEWS = [
    ("runs", "runs", "#runs tbody tr"),
    ("waterfall", "run/{a}?step={a_think}", ".payload .jv"),
    ("error", "run/{errors}?step={failed_step}", ".detail-error"),
    ("tokens", "run/{a}?tab=tokens", ".tk-row:not([hidden])"),
    ("large-run", "run/{big}", ".wf-body[aria-rowcount='50000'] .wf-row"),
    ("compare", "compare?a={a}&b={b}", ".cmp-body .cmp-row"),
    ("replay", "replay/{a_think}", "textarea.replay-input"),
    ("search", "search?error=true", "#search-results tbody tr"),
    ("stats", "stats", "#stats-table tbody tr"),
]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    where = os.environ.get("TRACEFORGE_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("width", [1280, 800])
def test_screenshots_of_every_view(dash, browser, shots, theme, width):
    """Written for a person to look at (not compared): each view, both themes, 800 px."""
    page = new_page(browser, width=width, theme=theme)
    ids = {**dash.ids, "big": dash.big}
    for name, route, ready in VIEWS:
        visit(page, dash, route.format(**ids))
        page.locator(ready).first.wait_for()
        page.wait_for_timeout(150)
        page.screenshot(path=str(shots / f"{name}-{theme}-{width}.png"))
        cut = page.evaluate("""() => [...document.querySelectorAll(
            '.wf-head > div, .grid-table th, .cmp-header > span, .tk-head > span, .run-actions')]
            .filter(n => n.offsetParent && n.getBoundingClientRect().right > innerWidth + 1)
            .map(n => n.textContent)""")
        assert not cut, f"{name} at {width} px: cut off on the right: {cut}"
    visit(page, dash, f"run/{dash.ids['a']}")
    wait_rows(page, 5)
    page.keyboard.press("?")
    page.locator("dialog#help").wait_for()
    page.screenshot(path=str(shots / f"keys-{theme}-{width}.png"))
    page.context.close()
    assert not page.errors, page.errors


# ---- the API docs page, and the dashboard behind a token ----

SMALL_RUN = r'''
import traceforge_client as tf
with tf.trace_run("pipeline one"):
    with tf.trace_step("plan", model="claude-haiku-4-5") as r:
        r["tokens_input"], r["tokens_output"] = 100, 20
assert tf.flush(10)
'''


def test_the_docs_page_renders_every_operation_of_the_description_and_sends_one(daemon, page):
    from traceforge_daemon.http.openapi import SPEC

    daemon.run_python(SMALL_RUN)
    page.goto(daemon.http_url + "/docs")
    operations = page.locator("details.op")
    operations.first.wait_for()
    assert operations.count() == sum(len(item) for item in SPEC["paths"].values())
    runs = operations.filter(has=page.locator(".path", has_text="/api/runs")).filter(
        has_text="List runs")
    runs.locator("summary").click()
    # choices come from the enum, placeholders from the examples (OpenAPI 3.1 schemas)
    choices = runs.locator("select[name=status] option").all_inner_texts()
    assert {"running", "success", "error", "incomplete"} <= set(choices)
    assert runs.locator("input[name=start_time]").get_attribute("placeholder") == "1714000000.5"
    runs.locator("input[name=limit]").fill("1")
    runs.locator("button[type=submit]").click()
    runs.locator(".status-ok").wait_for()
    assert "HTTP 200" in runs.locator(".status-ok").inner_text()
    assert "pipeline one" in runs.locator("pre").inner_text()


TOKEN = "a-test-token-of-32-characters-xx"


def test_with_a_token_the_dashboard_opens_after_logging_in_with_a_cookie(daemon_factory, page):
    """With a token set, the dashboard's own files once answered 401: now a login form
    sets an HttpOnly cookie, and the page, its live stream and /docs all work with it."""
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", TOKEN)).start()
    daemon.run_python(SMALL_RUN)
    base = "http://127.0.0.1:" + daemon.http_url.rsplit(":", 1)[1]
    page.goto(base + "/")
    assert page.url == base + "/login?next=/"  # a wrong token: tests/test_security.py
    assert not page.locator("#message").is_visible()
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.locator("#runs tbody tr", has_text="pipeline one").wait_for()
    assert page.url.startswith(base + "/")
    page.wait_for_function("document.querySelector('#live').dataset.state === 'live'")
    [cookie] = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    assert TOKEN not in cookie["value"]
    # the docs page works with the same cookie, with no token in any URL
    page.goto(base + "/docs")
    page.locator("details.op").first.wait_for()
    assert page.locator("#title").inner_text().startswith("TraceForge API")


def test_a_daemon_that_is_not_ok_shows_a_banner_with_its_reasons_on_every_view(dash, browser):
    page = new_page(browser)
    real = get(dash.url, "/api/health")
    failing = {**real, "status": "failing", "token_required": True, "reasons": [
        {"code": "disk_full", "status": "failing", "since": 1764547200.0,
         "message": "database or disk is full (SQLITE_FULL); free space on /data"}]}
    page.route("**/api/health", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(failing)))
    for route in ("runs", f"run/{dash.ids['a']}", "stats"):
        visit(page, dash, route)
        banner = page.locator("#health-banner")
        banner.wait_for()
        assert banner.get_attribute("data-status") == "failing"
        assert "not storing traces now" in banner.inner_text()
        assert "SQLITE_FULL" in banner.locator("li[data-code=disk_full]").inner_text()
        assert page.locator("#logout button").is_visible()  # a token daemon: a way out
    page.unroute("**/api/health")
    page.reload()
    page.wait_for_function("document.body.dataset.health === 'ok'")
    assert page.locator("#health-banner").is_hidden() and page.locator("#logout").is_hidden()
    page.context.close()
