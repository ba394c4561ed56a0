"""The dashboard in Firefox, driven over WebDriver BiDi with a small client of our own:
Playwright cannot drive Debian's firefox-esr (it lacks Playwright's patches), but Firefox speaks
BiDi itself. Skipped when no Firefox is installed (CI installs only chromium); where one
is, it loads every view against a real daemon and checks what the Chromium tests check
most: the 50,000-step run drawn virtually, reached by scrolling and by filter, scrolling
frames, the keyboard, tokens, compare colours, replay, search, stats, the theme switch,
800 px, and no console errors. Screenshots go to $TRACEFORGE_SCREENSHOTS when it is set."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from dashboard_support import DashboardDaemon

FIREFOX = os.environ.get("TRACEFORGE_FIREFOX") or shutil.which("firefox-esr") or shutil.which("firefox")

pytestmark = pytest.mark.skipif(not FIREFOX, reason="no Firefox on PATH")


class Bidi:
    """Commands and events over one WebDriver BiDi websocket."""

    def __init__(self, ws) -> None:
        self.ws, self.n, self.waiting, self.logs = ws, 0, {}, []
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") in self.waiting:
                self.waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "log.entryAdded":
                self.logs.append(data["params"])

    async def send(self, method: str, **params):
        self.n += 1
        answer = asyncio.get_running_loop().create_future()
        self.waiting[self.n] = answer
        await self.ws.send_str(json.dumps({"id": self.n, "method": method, "params": params}))
        data = await asyncio.wait_for(answer, 60)
        if data.get("type") == "error":
            raise RuntimeError(f"{method}: {data.get('error')}: {data.get('message')}")
        return data["result"]


def unwrap(value: dict):
    if value.get("type") in ("null", "undefined"):
        return None
    return value.get("value", value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def drive(base: str, ids: dict, shots) -> list:
    import aiohttp

    profile = tempfile.mkdtemp(prefix="tfff")
    port = free_port()
    browser = subprocess.Popen([FIREFOX, "--headless", f"--remote-debugging-port={port}",
                                "--profile", profile, "--no-remote"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    ws = await http.ws_connect(f"ws://127.0.0.1:{port}/session", max_msg_size=0)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            else:
                raise RuntimeError("Firefox did not open its BiDi port")
            b = Bidi(ws)
            await b.send("session.new", capabilities={})
            await b.send("session.subscribe", events=["log.entryAdded"])
            ctx = (await b.send("browsingContext.getTree"))["contexts"][0]["context"]
            await b.send("browsingContext.setViewport", context=ctx, viewport={"width": 1280, "height": 800})

            async def js(expression):
                answer = await b.send("script.evaluate", expression=expression, target={"context": ctx},
                                      awaitPromise=True, resultOwnership="none")
                if answer.get("type") == "exception":
                    raise RuntimeError(answer["exceptionDetails"]["text"])
                return unwrap(answer["result"])

            async def wait(expression, timeout=20):
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    if await js(expression):
                        return True
                    await asyncio.sleep(0.1)
                raise AssertionError(f"timed out waiting for {expression}")

            async def shot(name):
                if shots:
                    data = (await b.send("browsingContext.captureScreenshot", context=ctx))["data"]
                    (shots / f"firefox-{name}.png").write_bytes(base64.b64decode(data))

            def check(name, ok, detail=""):
                results.append((name, bool(ok), str(detail)))

            async def go(route):
                await js(f"location.hash = {json.dumps('#/' + route)}")

            await b.send("browsingContext.navigate", context=ctx, url=base + "/#/runs", wait="complete")
            await wait("document.querySelectorAll('#runs tbody tr').length > 0")
            await wait("document.querySelector('#live').dataset.state === 'live'")
            count = await js("document.querySelectorAll('#runs tbody tr').length")
            check("runs list rendered, live stream connected", True, f"{count} rows")
            await shot("runs")

            await go(f"run/{ids['big']}")
            await wait("document.querySelector('.wf-body')?.getAttribute('aria-rowcount') === '50000'", 30)
            paint = await js("(() => { const s = performance.getEntriesByName('tf:run-select').at(-1); "
                             "const p = performance.getEntriesByName('tf:run-painted').at(-1); return p && s ? p.startTime - s.startTime : null; })()")
            dom = await js("document.querySelectorAll('.wf-row').length")
            check("50k run: waterfall drawn, virtual", dom < 120, f"{paint and round(paint)} ms to paint, {dom} rows in the DOM")
            await js("(() => { const b = document.querySelector('.wf-body'); b.scrollTop = b.scrollHeight; })()")
            await wait("[...document.querySelectorAll('.wf-row:not([hidden]) .wf-label')].some(n => n.textContent === 'the_last_step')")
            await js("[...document.querySelectorAll('.wf-row:not([hidden])')].find(n => n.querySelector('.wf-label').textContent === 'the_last_step').click()")
            await wait("document.querySelector('#detail-title')?.textContent === 'the_last_step'")
            box = await js("JSON.stringify(document.querySelector('#detail').getBoundingClientRect())")
            check("50k run: last step reached by scrolling, detail in view", json.loads(box)["top"] < 800, box)
            await shot("large-run")
            # scroll frames
            frames = await js("""new Promise((done) => { const b = document.querySelector('.wf-body'); b.scrollTop = 0;
              const d = []; let last = performance.now(); const end = last + 2000;
              const f = (now) => { d.push(now - last); last = now; b.scrollTop += 600; if (now < end) requestAnimationFrame(f); else done(JSON.stringify(d.slice(1))); };
              requestAnimationFrame(f); })""")
            frames = sorted(json.loads(frames))
            p95 = frames[int(0.95 * (len(frames) - 1))]
            check("50k run: scroll frames p95 under 50 ms", p95 < 50, f"p95 {p95:.1f} ms, max {frames[-1]:.1f} ms over {len(frames)}")
            # filter
            await js("(() => { const f = document.querySelector('.wf-filter'); f.value = 'the_last_step'; f.dispatchEvent(new Event('input')); })()")
            await wait("document.querySelector('.wf-count').textContent.includes('1 of 50,000')")
            check("filter narrows 50k to the match and its ancestors", True,
                  await js("document.querySelector('.wf-count').textContent"))

            await go(f"run/{ids['a']}?step={ids['a_plan']}")
            await wait("document.querySelector('#detail-title')?.textContent === 'plan'")
            await wait("document.querySelector('.payload .jv') !== null")
            rows = await js("[...document.querySelectorAll('.wf-body .wf-row:not([hidden])')].sort((x, y) => x.getBoundingClientRect().top - y.getBoundingClientRect().top).map(n => n.querySelector('.wf-label').textContent + ':' + getComputedStyle(n.querySelector('.wf-name')).paddingLeft).join(' ')")
            check("deep link opens the step; rows indented by depth", "think:18px" in rows, rows)
            # keyboard through BiDi input: focus the grid, ArrowDown, then '?'
            await js("document.querySelector('.wf-body').focus()")
            await b.send("input.performActions", context=ctx, actions=[{"type": "key", "id": "kb", "actions": [
                {"type": "keyDown", "value": "\ue015"}, {"type": "keyUp", "value": "\ue015"}]}])
            focused = await js("document.activeElement.dataset.stepId || document.activeElement.className")
            await b.send("input.performActions", context=ctx, actions=[{"type": "key", "id": "kb", "actions": [
                {"type": "keyDown", "value": "?"}, {"type": "keyUp", "value": "?"}]}])
            await wait("document.querySelector('dialog#help')?.open === true")
            check("keyboard: arrow focuses a row, ? opens the key list", bool(focused), f"focused {focused}")
            await shot("waterfall-keys")
            await js("document.querySelector('dialog#help').close()")
            await shot("waterfall")

            await go(f"run/{ids['a']}?tab=tokens")
            await wait("document.querySelectorAll('.tk-row:not([hidden])').length > 0")
            total = await js("document.querySelector('[data-figure=tk-total-in]').textContent")
            check("tokens view: bars and totals", total == "350", f"input total {total}")
            await shot("tokens")

            await go(f"compare?a={ids['a']}&b={ids['b']}")
            await wait("document.querySelectorAll('.cmp-body .cmp-row:not([hidden])').length > 0")
            colours = await js("[...document.querySelectorAll('.cmp-body .cmp-row:not([hidden]) .delta')].map(n => n.className.split(' ').pop() + '=' + getComputedStyle(n).color).join(' ')")
            red = ("worse=rgb(207, 34, 46)", "worse=rgb(248, 81, 73)")  # light, dark theme
            green = ("better=rgb(26, 127, 55)", "better=rgb(63, 185, 80)")
            check("compare view: coloured deltas", any(c in colours for c in red)
                  and any(c in colours for c in green), colours)
            await shot("compare")

            await go(f"replay/{ids['a_think']}")
            await wait("document.querySelector('textarea.replay-input') !== null")
            await js("(() => { const t = document.querySelector('textarea.replay-input'); t.value = '{\"prompt\": \"from firefox\"}'; t.dispatchEvent(new Event('input')); document.querySelector('.replay-form button[type=submit]').click(); })()")
            await wait("document.querySelector('.snippet')?.textContent.includes('from firefox')")
            check("replay form round-trips an edited input", True)
            await shot("replay")

            await go("search?error=true")
            await wait("document.querySelectorAll('#search-results tbody tr').length > 0")
            check("search view", True)
            await go("stats")
            await wait("document.querySelectorAll('#stats-table tbody tr').length > 0")
            check("stats view", True, await js("document.querySelector('#client-drops').textContent"))
            await js("document.getElementById('theme-toggle').click()")
            await js("document.getElementById('theme-toggle').click()")
            theme = await js("document.documentElement.dataset.theme || 'auto'")
            bg = await js("getComputedStyle(document.body).backgroundColor")
            check("theme switch", theme == "light" and bg == "rgb(255, 255, 255)", f"{theme} {bg}")
            await shot("stats-light")
            await b.send("browsingContext.setViewport", context=ctx, viewport={"width": 800, "height": 800})
            await go(f"run/{ids['a']}?step={ids['a_plan']}")
            await wait("document.querySelector('#detail-title')?.textContent === 'plan'")
            cut = await js("[...document.querySelectorAll('.wf-head > div, .run-actions')].filter(n => n.offsetParent && n.getBoundingClientRect().right > innerWidth + 1).length")
            check("800 px: nothing cut off on the right", cut == 0, f"{cut} cut")
            await shot("waterfall-light-800")
            errors = [entry for entry in b.logs if entry.get("level") == "error"]
            check("no errors in the console", not errors, json.dumps(errors)[:500])
            await b.send("session.end")
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return results


def test_every_view_works_in_firefox():
    from pathlib import Path

    where = os.environ.get("TRACEFORGE_SCREENSHOTS")
    shots = Path(where) if where else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    dash = DashboardDaemon()
    try:
        results = asyncio.run(drive(dash.url, {**dash.ids, "big": dash.big}, shots))
    finally:
        dash.close()
    failed = [f"{name}: {detail}" for name, ok, detail in results if not ok]
    assert not failed, failed
    assert len(results) >= 15
