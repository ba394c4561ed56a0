#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright).

    .venv/bin/python bench/dashboard_browser.py                # ~2 min
    .venv/bin/python bench/dashboard_browser.py --quick        # 10k run only, fewer repeats
    .venv/bin/python bench/dashboard_browser.py --json /tmp/dash.json

Traces a 10,000-step and a 50,000-step run through the real client into a real daemon,
then measures, in the page:

1. selection: from setting the run's URL to the waterfall's first painted frame (the app
   marks ``tf:run-painted`` one animation frame and one task after it drew the rows), and
   the bytes the page downloaded for it; repeated, alternating the two runs;
2. scrolling: frame times (requestAnimationFrame deltas) while the waterfall scrolls by
   ~25 rows a frame (a fast fling) and by 5 rows a frame (a wheel), p50/p95/max, and long
   tasks (PerformanceObserver 'longtask', > 50 ms) meanwhile;
3. live: with the 50,000-step run open, another process traces a run adding 20 steps/s
   for 10 s. Counted with the DevTools protocol: every byte the page received (the event
   stream included) and every request it made; against it, the JSON of the new steps as
   the run detail (GET /api/runs/{id}) lists them; and the long tasks meanwhile;
4. live, the hard case: the open run is itself the live one, already 50,000 steps, adding
   20 steps/s, so each new step re-shapes a 50,000-row tree.

Targets (issue 9): 10k drawn within 1 s of selecting it, 50k within 2 s; scroll p95 under
50 ms; live: at most about twice the JSON of the new steps, no task over 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Daemon, load, machine, percentile, remove, short_tmp  # noqa: E402

CHROMIUM = os.environ.get("TRACEFORGE_CHROMIUM") or shutil.which("chromium")

# A run of N steps shaped like an agent: groups of one step holding 9 LLM calls.
BIG = r'''
import sys, traceforge_client as tf
n = int(sys.argv[1])
tf.init(max_queue_events=3 * n)
with tf.trace_run(f"bench {n}") as run_id:
    done = 0
    while done < n:
        with tf.trace_step("agent_turn", input_data={"turn": done}):
            done += 1
            for j in range(min(9, n - done)):
                with tf.trace_step("llm.call", model="claude-haiku-4-5",
                                   input_data={"prompt": "x" * 200}) as r:
                    r["tokens_input"], r["tokens_output"] = 900 + j, 120
                    r["output"] = "y" * 200
                done += 1
print(run_id, flush=True)
assert tf.flush(120)
'''

# A run adding `rate` steps a second for `seconds`, after `prefill` steps traced at once;
# it prints its run id once the prefill is stored, then waits for a line on stdin.
LIVE = r'''
import sys, time, traceforge_client as tf
prefill, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
tf.init(max_queue_events=3 * prefill + 10_000)
with tf.trace_run("bench live") as run_id:
    for i in range(prefill):
        with tf.trace_step("earlier", model="claude-haiku-4-5") as r:
            r["tokens_input"], r["tokens_output"] = 900, 120
    assert tf.flush(120)
    print(run_id, flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < seconds:
        with tf.trace_step("llm.call", model="claude-haiku-4-5",
                           input_data={"prompt": "x" * 200}) as r:
            r["tokens_input"], r["tokens_output"] = 900, 120
            r["output"] = "y" * 200
        k += 1
        time.sleep(max(0.0, start + k / rate - time.monotonic()))
    assert tf.flush(30)
print("done", k, flush=True)
'''

OBSERVE = """() => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push(e.duration);
  }).observe({type: 'longtask', buffered: false});
}"""

SELECT = """async (runId) => {
  const before = performance.getEntriesByName('tf:run-painted').length;
  performance.clearResourceTimings();
  const t0 = performance.now();
  location.hash = '#/run/' + runId;
  while (performance.getEntriesByName('tf:run-painted').length === before) {
    if (performance.now() - t0 > 60000) throw new Error('the run was not drawn within 60 s');
    await new Promise((r) => setTimeout(r, 5));
  }
  const painted = performance.getEntriesByName('tf:run-painted').at(-1).startTime;
  const steps = performance.getEntriesByType('resource').filter((e) => e.name.includes('/steps'));
  return {ms: painted - t0, bytes: steps.reduce((n, e) => n + e.transferSize, 0),
          fetch_ms: steps.length ? steps[0].responseEnd - steps[0].startTime : null,
          rows: document.querySelectorAll('.wf-body .wf-row:not([hidden])').length,
          rowcount: Number(document.querySelector('.wf-body').getAttribute('aria-rowcount'))};
}"""

SCROLL = """async ([pixelsPerFrame, seconds]) => {
  const body = document.querySelector('.wf-body');
  body.scrollTop = 0;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  window.__long = [];
  const deltas = [];
  let last = performance.now();
  const end = last + seconds * 1000;
  await new Promise((done) => {
    const frame = (now) => {
      deltas.push(now - last);
      last = now;
      body.scrollTop += pixelsPerFrame;
      if (body.scrollTop + body.clientHeight >= body.scrollHeight - 1) body.scrollTop = 0;
      if (now < end) requestAnimationFrame(frame); else done();
    };
    requestAnimationFrame(frame);
  });
  return {deltas: deltas.slice(1), long: window.__long.slice(),
          dom: document.querySelectorAll('.wf-row').length};
}"""


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": percentile(ordered, 0.5), "p95": percentile(ordered, 0.95),
            "max": ordered[-1] if ordered else float("nan")}


def trace_big(daemon: Daemon, n: int) -> str:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", BIG, str(n)], env=daemon.env, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    print(f"  traced a {n:,}-step run in {time.monotonic() - started:.1f} s", flush=True)
    return out.split()[0]


class Traffic:
    """Every byte the page receives and every request it makes, from the DevTools protocol."""

    def __init__(self, page) -> None:
        self.session = page.context.new_cdp_session(page)
        self.session.send("Network.enable")
        self.reset()
        self.session.on("Network.dataReceived", self._data)
        self.session.on("Network.requestWillBeSent", self._request)
        self.session.on("Network.responseReceived", self._response)

    def reset(self) -> None:
        self.body_bytes = 0
        self.wire_bytes = 0
        self.requests: list[str] = []
        self.last_activity = time.monotonic()

    def _data(self, event) -> None:
        self.body_bytes += event.get("dataLength", 0)
        self.wire_bytes += event.get("encodedDataLength", 0)
        self.last_activity = time.monotonic()

    def _request(self, event) -> None:
        self.requests.append(event["request"]["url"])
        self.last_activity = time.monotonic()

    def settle(self, page, quiet: float, timeout: float = 120.0) -> list[str]:
        """Wait until nothing has arrived for `quiet` seconds; the requests made meanwhile."""
        self.reset()
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_activity < quiet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page never went quiet for {quiet} s")
            page.wait_for_timeout(100)
        return [u.split("/", 3)[-1] for u in self.requests]

    def _response(self, event) -> None:
        self.wire_bytes += event["response"].get("encodedDataLength", 0)  # headers


def live_phase(page, daemon: Daemon, traffic: Traffic, open_run: str | None, prefill: int,
               rate: float, seconds: float, small: str) -> dict:
    """A live run traced at `rate` steps/s; the page shows open_run (None: the live run)."""
    process = subprocess.Popen([sys.executable, "-c", LIVE, str(prefill), str(rate), str(seconds)],
                               env=daemon.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        live_id = process.stdout.readline().strip()
        shown = open_run or live_id
        page.evaluate(SELECT, small)
        page.evaluate(SELECT, shown)
        # The prefill's events reach the page as one burst, which can outrun the daemon's
        # 4 MiB allowance for a live subscriber: the page is then cut off, reconnects after
        # the stream's retry delay (2 s) and refetches what it shows. Measure once that
        # is over and nothing has arrived for longer than that delay.
        settling = traffic.settle(page, quiet=3.0)
        page.evaluate("() => { window.__long = []; }")
        before = get_json(f"{daemon.http}/api/runs/{live_id}")["run"]["step_count"]
        traffic.reset()
        load_before = load()
        process.stdin.write("go\n")
        process.stdin.flush()
        done = process.stdout.readline().split()
        page.wait_for_timeout(1500)  # the last events reach the page
        long_tasks = page.evaluate("() => window.__long.slice()")
        process.wait(30)
        detail = get_json(f"{daemon.http}/api/runs/{live_id}")
        new_steps = [s for s in detail["steps"] if s["step_name"] == "llm.call"]
        new_json = len(json.dumps(new_steps, separators=(",", ":")))
        shown_rows = page.evaluate("() => Number(document.querySelector('.wf-body').getAttribute('aria-rowcount'))")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "open": "the live run itself" if open_run is None else "another run (50,000 steps)",
        "resyncs_while_settling": sum(1 for url in settling
                                      if url.startswith(f"api/runs/{shown}/steps")),
        "steps_added": int(done[1]) if len(done) > 1 else None,
        "steps_before": before,
        "page_body_bytes": traffic.body_bytes,
        "page_wire_bytes": traffic.wire_bytes,
        "requests": [u.split("/", 3)[-1] for u in traffic.requests],
        "new_steps_json_bytes": new_json,
        "ratio": traffic.wire_bytes / new_json if new_json else None,
        "long_tasks_ms": sorted(long_tasks, reverse=True)[:10],
        "rows_shown_after": shown_rows,
        "load_before": load_before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="the 10k run only, 2 repeats, no live phase")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    if not CHROMIUM:
        sys.exit("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    facts = machine()
    print(json.dumps(facts), flush=True)
    results: dict = {"machine": facts, "select": {}, "scroll": {}, "live": []}
    home = short_tmp("tfbw")
    daemon = Daemon(home / "home").start()
    try:
        sizes = [10_000] if args.quick else [10_000, 50_000]
        runs = {n: trace_big(daemon, n) for n in sizes}
        small = trace_big(daemon, 100)  # shown between selections, so each one loads afresh
        repeats = 2 if args.quick else args.repeats
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            traffic = Traffic(page)
            page.goto(daemon.http + "/#/runs")
            page.locator("#runs tbody tr").first.wait_for()
            page.evaluate(OBSERVE)
            print(f"selection (load {load()})", flush=True)
            timings = {n: [] for n in sizes}
            for _ in range(repeats):
                for n in sizes:
                    page.evaluate(SELECT, small)
                    page.wait_for_timeout(300)
                    got = page.evaluate(SELECT, runs[n])
                    assert got["rowcount"] == n, got
                    timings[n].append(got)
                    print(f"  {n:>6,} steps: {got['ms']:7.0f} ms to the first painted frame "
                          f"({got['fetch_ms']:.0f} ms of it fetching {got['bytes'] / 1e6:.2f} MB), "
                          f"{got['rows']} rows in the DOM", flush=True)
            for n in sizes:
                ms = [t["ms"] for t in timings[n]]
                fetches = [t["fetch_ms"] for t in timings[n]]
                results["select"][n] = {**summary(ms), "fetch_ms": summary(fetches),
                                        "bytes": timings[n][-1]["bytes"],
                                        "dom_rows": timings[n][-1]["rows"], "load": load()}
            print(f"scrolling (load {load()})", flush=True)
            for n in sizes:
                page.evaluate(SELECT, small)
                page.evaluate(SELECT, runs[n])
                page.wait_for_timeout(500)
                for label, pixels in (("fling, 25 rows a frame", 600), ("wheel, 5 rows a frame", 120)):
                    frames, long_tasks, dom = [], [], 0
                    for _ in range(max(1, repeats // 2)):
                        got = page.evaluate(SCROLL, [pixels, 3])
                        frames += got["deltas"]
                        long_tasks += got["long"]
                        dom = max(dom, got["dom"])
                    stats = {**summary(frames), "long_tasks_ms": sorted(long_tasks, reverse=True)[:5],
                             "dom_rows": dom, "load": load()}
                    results["scroll"].setdefault(n, {})[label] = stats
                    print(f"  {n:>6,} steps, {label}: frames p50 {stats['p50']:.1f} ms, "
                          f"p95 {stats['p95']:.1f} ms, max {stats['max']:.1f} ms over {stats['n']}; "
                          f"long tasks {stats['long_tasks_ms'] or 'none'}; {dom} rows in the DOM", flush=True)
            if not args.quick:
                for open_run, prefill in ((runs[50_000], 0), (None, 50_000)):
                    got = live_phase(page, daemon, traffic, open_run, prefill, args.rate, args.seconds, small)
                    results["live"].append(got)
                    print(f"live, open: {got['open']} (load {got['load_before']} -> {got['load_after']}):\n"
                          f"  {got['steps_added']} steps added; the page received {got['page_wire_bytes']:,} B "
                          f"({got['page_body_bytes']:,} B of bodies) in {len(got['requests'])} requests "
                          f"{got['requests']}; the new steps' JSON is {got['new_steps_json_bytes']:,} B: "
                          f"{got['ratio']:.2f}x; long tasks {got['long_tasks_ms'] or 'none over 50 ms'}; "
                          f"{got['rows_shown_after']:,} rows after; before measuring, "
                          f"{got['resyncs_while_settling']} catch-up(s) after the prefill's burst",
                          flush=True)
            if errors:
                print("page errors:", errors)
            browser.close()
    finally:
        daemon.stop()
        remove(home)
    results["load_end"] = load()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
