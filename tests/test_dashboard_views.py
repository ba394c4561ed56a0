"""The dashboard's other views in a real browser: compare (with its colours and pickers),
replay, tokens, deep links, the run list's paging and filters, search, stats, and a 401
sending the user to the login page."""

from __future__ import annotations

import json
import re

import pytest

from api_support import get
from dashboard_support import (detail_title, new_page, row_named, visit,
                               wait_rows)



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


def test_the_steps_and_run_of_a_killed_process_show_as_incomplete(daemon, page):
    from test_incomplete import kill, start_doomed

    process, run_id = start_doomed(daemon)
    page.goto(f"{daemon.http_url}/#/run/{run_id}")
    page.locator(".wf-row.st-running").first.wait_for()  # live while its process lives
    kill(process)
    # the row changes in place, from the live stream, with no reload
    page.wait_for_function(
        "document.querySelectorAll('.wf-body .wf-row.st-incomplete').length === 2")
    assert page.locator(".run-head .badge, .badge.st-incomplete").first.is_visible()
    page.goto(f"{daemon.http_url}/#/runs?status=incomplete")
    found = page.locator("#runs tbody tr", has_text="doomed")
    found.wait_for()
    assert "incomplete" in found.locator(".badge").inner_text()
