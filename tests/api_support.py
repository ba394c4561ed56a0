"""Helpers for the HTTP API tests: a daemon holding a known set of traced runs, and
small stdlib HTTP calls that return (status, JSON) instead of raising on 4xx."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

from conftest import DaemonProcess

# A research agent, like the demo's, traced twice with different tokens, costs and shapes,
# plus a failing run and an unpriced one. Prints the ids the tests look up.
DEMO = r'''
import json, time
import traceforge_client as tf

ids = {}

def llm(name, tokens, cost, model="claude-sonnet-4-6", input_data=None, metadata=None):
    with tf.trace_step(name, input_data=input_data or {"prompt": name}, model=model,
                       metadata=metadata) as r:
        r["tokens_input"], r["tokens_output"] = tokens
        r["cost_usd"] = cost
        r["output"] = f"{name} output"
        ids.setdefault(name + "_ids", []).append(tf.current_step_id())

def research(key, extract_tokens, extract_cost, extra_step):
    with tf.trace_run("research: climate", metadata={"variant": key}) as run_id:
        ids[key] = run_id
        for query in ("climate change", "recent data", "outlook"):
            with tf.trace_step("web_search", input_data={"query": query}) as r:
                r["output"] = {"results": [query], "count": 1}
                ids.setdefault(key + "_searches", []).append(tf.current_step_id())
        llm("extract_facts", extract_tokens, extract_cost, model="claude-haiku-4-5",
            metadata={"parameters": {"temperature": 0.2, "max_tokens": 512}})
        with tf.trace_step("summarize", input_data={"facts": 3}) as r:
            ids[key + "_summarize"] = tf.current_step_id()
            llm("draft_summary", (89, 95), 0.0005)
            llm("refine_summary", (106, 88), 0.0006)
            r["output"] = "summary"
        llm(extra_step, (78, 42), 0.0004)

research("a", (112, 48), 0.001, "format_report")
time.sleep(0.01)
research("b", (150, 60), 0.002, "fact_check")

with tf.trace_run("error-demo") as run_id:
    ids["errors"] = run_id
    try:
        with tf.trace_step("call_api", input_data={"url": "https://example.invalid"}):
            ids["failed_step"] = tf.current_step_id()
            raise ConnectionError("upstream timed out")
    except ConnectionError:
        with tf.trace_step("fallback") as r:
            r["output"] = "cached answer"

with tf.trace_run("unpriced") as run_id:
    ids["unpriced"] = run_id
    with tf.trace_step("mystery_llm", model="mystery-model-1") as r:
        r["tokens_input"], r["tokens_output"] = 2000, 10
        r["tokens_cache_read"] = 300
        ids["unpriced_step"] = tf.current_step_id()

assert tf.flush(10)
print(json.dumps(ids))
'''


class PopulatedDaemon:
    """A daemon in a temporary home, with DEMO's runs stored; ``ids`` says which."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tfapi", dir="/tmp"))
        self.daemon = DaemonProcess(self.tmp / "home")
        self.daemon.home.mkdir(parents=True)
        self.daemon.start()
        self.url = self.daemon.http_url
        self.ids: dict = json.loads(self.daemon.run_python(DEMO).stdout)

    def close(self) -> None:
        code = self.daemon.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert code == 0, f"daemon exited with {code}:\n{self.daemon.log()}"


def call(base: str, method: str, path: str, params: Optional[dict] = None,
         body: Any = None, raw_body: Optional[bytes] = None,
         timeout: float = 30) -> tuple[int, Any, dict]:
    """(status, parsed JSON or text, headers), for 2xx and 4xx/5xx alike."""
    url = base + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = raw_body if raw_body is not None else (
        None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, payload, headers = exc.code, exc.read(), dict(exc.headers)
    content_type = headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        return status, json.loads(payload), headers
    return status, payload.decode(), headers


def get(base: str, path: str, **params: Any) -> Any:
    """GET that must succeed; returns the JSON body."""
    status, body, _ = call(base, "GET", path, params or None)
    assert status == 200, f"GET {path} {params} -> {status}: {body}"
    return body
