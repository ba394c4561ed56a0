"""The dashboard as a person sees it: screenshots of every view in both themes and at
800 px (to $TRACEFORGE_SCREENSHOTS or a temporary folder, looked at, not compared), the
health banner, the API docs page, and the dashboard behind a token with its login."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api_support import get
from dashboard_support import (new_page, visit,
                               wait_rows)



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
