"""What the dashboard's browser tests trace: two comparable runs with known deltas, a
failing run, an unpriced run with cache tokens, a page's worth of small runs, and a
50,000-step run; plus the browser itself (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import DaemonProcess

CHROMIUM = os.environ.get("TRACEFORGE_CHROMIUM") or shutil.which("chromium")

# Run B does "think" faster, in fewer tokens and cheaper than run A (green), "answer"
# slower, in more tokens and dearer (red); "polish" is only in A and "verify" only in B.
KNOWN = r'''
import json, time
import traceforge_client as tf

ids = {}

def llm(key, name, tokens, cost, pause, model="claude-haiku-4-5", cache=(0, 0)):
    with tf.trace_step(name, model=model,
                       input_data={"prompt": f"{name}: step one\nthen step two"}) as r:
        time.sleep(pause)
        r["tokens_input"], r["tokens_output"] = tokens
        r["tokens_cache_read"], r["tokens_cache_write"] = cache
        r["cost_usd"] = cost
        r["output"] = {"text": f"{name} answer\nwith a second line", "n": 1}
        ids[f"{key}_{name}"] = tf.current_step_id()

def agent(key, think, answer, last):
    with tf.trace_run("agent", metadata={"variant": key}) as run_id:
        ids[key] = run_id
        with tf.trace_step("plan") as r:
            ids[f"{key}_plan"] = tf.current_step_id()
            llm(key, "think", *think)
            with tf.trace_step("lookup"):
                ids[f"{key}_lookup"] = tf.current_step_id()
                time.sleep(0.004)
            r["output"] = "planned"
        llm(key, "answer", *answer)
        llm(key, last, (50, 20), 0.001, 0.002)

agent("a", ((100, 50), 0.002, 0.040), ((200, 80), 0.004, 0.010), "polish")
agent("b", ((80, 40), 0.001, 0.005), ((300, 90), 0.006, 0.050), "verify")

with tf.trace_run("flaky fetch") as run_id:
    ids["errors"] = run_id
    with tf.trace_step("outer"):
        try:
            with tf.trace_step("fetch", input_data={"url": "https://example.invalid"}):
                ids["failed_step"] = tf.current_step_id()
                raise ConnectionError("upstream timed out\nafter 3 tries")
        except ConnectionError:
            pass
    with tf.trace_step("recover") as r:
        r["output"] = "cached answer"

with tf.trace_run("local model") as run_id:
    ids["unpriced"] = run_id
    llm("u", "classify", (2000, 10), None, 0.001, model="my-local-llm", cache=(300, 40))

for n in range(120):
    with tf.trace_run(f"bulk {n:03d}"):
        with tf.trace_step("work"):
            pass

assert tf.flush(30)
print(json.dumps(ids))
'''

# 500 batches of 99 items: 50,000 steps. The last item of the last batch is the last row.
FIFTY_THOUSAND = r'''
import traceforge_client as tf
tf.init(max_queue_events=250_000)
with tf.trace_run("fifty thousand") as run_id:
    for group in range(500):
        with tf.trace_step("batch"):
            for item in range(99):
                name = "the_last_step" if group == 499 and item == 98 else "item"
                with tf.trace_step(name, model="claude-haiku-4-5") as r:
                    r["tokens_input"], r["tokens_output"] = 10, 2
print(run_id)
assert tf.flush(120)
'''

# A run that holds a step open until told to go on, then adds 20 steps and ends.
LIVE = r'''
import sys, time
import traceforge_client as tf
with tf.trace_run("live run") as run_id:
    with tf.trace_step("slow_step"):
        assert tf.flush(10)
        print(run_id, flush=True)
        sys.stdin.readline()
        for n in range(20):
            with tf.trace_step(f"tick_{n:02d}", model="claude-haiku-4-5") as r:
                r["tokens_input"], r["tokens_output"] = 10, 5
                time.sleep(0.01)
assert tf.flush(10)
print("ended", flush=True)
'''


class DashboardDaemon:
    """A daemon in a temporary home holding KNOWN's runs and a 50,000-step run."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tfweb", dir="/tmp"))
        self.daemon = DaemonProcess(self.tmp / "home")
        self.daemon.home.mkdir(parents=True)
        self.daemon.start()
        self.url = self.daemon.http_url
        self.ids: dict = json.loads(self.daemon.run_python(KNOWN).stdout)
        self.big = self.daemon.run_python(FIFTY_THOUSAND, timeout=300).stdout.strip()

    def start_live(self) -> subprocess.Popen:
        return subprocess.Popen(
            [self.daemon.python, "-c", LIVE], env=self.daemon.env, cwd=self.daemon.cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def close(self) -> None:
        code = self.daemon.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert code == 0, f"daemon exited with {code}:\n{self.daemon.log()}"


# ---- driving the page ----

EXPECT_MS = 10_000


def new_page(browser, width=1280, height=800, theme="dark"):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme=theme)
    context.set_default_timeout(EXPECT_MS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    return page


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
