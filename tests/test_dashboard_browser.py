"""The dashboard in a real headless browser (Debian's Chromium, driven by Playwright):
runs appear with their totals, unpriced steps are shown as such, a run's waterfall nests
its steps, and a run traced while the page is open appears without a reload."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("TRACEFORGE_CHROMIUM") or shutil.which("chromium")

TRACED = r'''
import traceforge_client as tf
with tf.trace_run("pipeline one"):
    with tf.trace_step("plan", model="claude-haiku-4-5") as r:
        r["tokens_input"], r["tokens_output"] = 100, 20
        with tf.trace_step("lookup"):
            pass
    with tf.trace_step("local_model", model="my-own-llm") as r:
        r["tokens_input"], r["tokens_output"] = 10, 5    # no price known: unpriced
assert tf.flush(10)
'''


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


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: message.type == "error" and errors.append(message.text))
    yield opened
    context.close()
    assert not errors, errors


def test_runs_waterfall_unpriced_and_live_updates(daemon, page):
    daemon.run_python(TRACED)
    page.goto(daemon.http_url + "/")
    row = page.locator("#runs tbody tr").filter(has_text="pipeline one")
    row.wait_for()
    assert "success" in row.inner_text()
    assert "1 unpriced" in row.inner_text()  # never a silent $0.00

    # The newest run is opened: its waterfall nests lookup under plan.
    page.locator("#waterfall .row").first.wait_for()
    names = page.locator("#waterfall .name").all_inner_texts()
    assert [n.split()[0] for n in names] == ["plan", "lookup", "local_model"]
    indents = page.locator("#waterfall .name").evaluate_all(
        "nodes => nodes.map(n => parseFloat(getComputedStyle(n).paddingLeft))")
    assert indents[1] > indents[0] == indents[2]
    assert "unpriced" in page.locator("#waterfall .row").nth(2).inner_text()
    assert page.locator("#live").inner_text() == "live"

    # A run traced while the page is open shows up through /api/events, with no reload.
    daemon.run_python(TRACED.replace("pipeline one", "pipeline two"))
    page.locator("#runs tbody tr").filter(has_text="pipeline two").wait_for(timeout=10_000)
    assert page.locator("#runs tbody tr").count() == 2


def test_the_docs_page_renders_every_operation_of_the_description_and_sends_one(daemon, page):
    from traceforge_daemon.http.openapi import SPEC

    daemon.run_python(TRACED)
    page.goto(daemon.http_url + "/docs")
    operations = page.locator("details.op")
    operations.first.wait_for()
    assert operations.count() == sum(len(item) for item in SPEC["paths"].values())
    runs = operations.filter(has=page.locator(".path", has_text="/api/runs")).filter(
        has_text="List runs")
    runs.locator("summary").click()
    # choices come from the enum, placeholders from the examples (OpenAPI 3.1 schemas)
    choices = runs.locator("select[name=status] option").all_inner_texts()
    assert {"running", "success", "error"} <= set(choices)
    assert runs.locator("input[name=start_time]").get_attribute("placeholder") == "1714000000.5"
    runs.locator("input[name=limit]").fill("1")
    runs.locator("button[type=submit]").click()
    runs.locator(".status-ok").wait_for()
    assert "HTTP 200" in runs.locator(".status-ok").inner_text()
    assert "pipeline one" in runs.locator("pre").inner_text()


TOKEN = "a-test-token-of-32-characters-xx"


def test_with_a_token_the_dashboard_opens_after_logging_in_with_a_cookie(daemon_factory, page):
    """Issue 10, finding 13: with a token the dashboard's files answered 401."""
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", TOKEN)).start()
    daemon.run_python(TRACED)
    base = "http://127.0.0.1:" + daemon.http_url.rsplit(":", 1)[1]
    page.goto(base + "/")
    assert page.url == base + "/login?next=/"  # a wrong token: tests/test_security.py
    assert not page.locator("#message").is_visible()
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    row = page.locator("#runs tbody tr").filter(has_text="pipeline one")
    row.wait_for()
    assert page.url == base + "/"
    assert page.locator("#live").inner_text() == "live"  # /api/events takes the cookie too
    [cookie] = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    assert TOKEN not in cookie["value"]
    # the docs page works with the same cookie, with no token in any URL
    page.goto(base + "/docs")
    page.locator("details.op").first.wait_for()
    assert page.locator("#title").inner_text().startswith("TraceForge API")
