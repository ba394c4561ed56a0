"""POST /api/ingest: the socket protocol's events as JSON over HTTP, held to the same
rules, stored the same way, answered only once they are committed (protocol.md section 19)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from api_support import call

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "0190f5a2b3c4d5e6f708192a3b4c5d6e"
T0 = 1_733_040_000_123_456_789


def curl_example() -> str:
    text = (ROOT / "protocol.md").read_text()
    section = text[text.index("## 19. HTTP ingest"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def events(run_id: str = RUN_ID, step: str = "9f3c2a1b00000001") -> list:
    return [
        {"type": "run_start", "run_id": run_id, "name": "über-run ✓", "start_ns": T0},
        {"type": "step_start", "run_id": run_id, "step_id": step, "name": "llm 調べる",
         "start_ns": T0 + 1, "model": "claude-haiku-4-5", "input_json": '{"q": "x"}'},
        {"type": "step_end", "run_id": run_id, "step_id": step, "name": "llm 調べる",
         "start_ns": T0 + 1, "end_ns": T0 + 1_500_000_001, "status": "error",
         "model": "claude-haiku-4-5", "output_json": '"partial"', "tokens_input": 12,
         "tokens_output": 7, "tokens_cache_read": 3, "cost_usd": 0.25,
         "error_type": "TimeoutError", "error_message": "too slow", "traceback": "line 1\n"},
        {"type": "run_end", "run_id": run_id, "name": "über-run ✓", "start_ns": T0,
         "end_ns": T0 + 2_000_000_000, "status": "error"},
    ]


def post(base: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(base + "/api/ingest", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


@pytest.mark.skipif(shutil.which("curl") is None and not os.environ.get("CI"),
                    reason="no curl here (.ci/run installs it)")
def test_the_curl_example_in_protocol_md_runs_as_written(daemon):
    script = curl_example().replace("http://127.0.0.1:8742", daemon.http_url)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": 4}
    assert daemon.query("SELECT run_name, status FROM runs") == [("nightly backup", "success")]
    [(name, status, latency, input_data, output)] = daemon.query(
        "SELECT step_name, status, latency_ms, input_data, output_data FROM steps")
    assert (name, status, latency) == ("rsync", "ok", 2500.0)
    assert (json.loads(input_data), json.loads(output)) == ({"target": "/backup"},
                                                            {"files": 1204})


def test_events_are_stored_as_sent_and_committed_before_the_answer(daemon):
    body = json.dumps({"events": events(), "pid": 4242, "host": "build-7",
                       "dropped": {"queue_full": 3}}).encode()
    status, answer, _ = post(daemon.http_url, body)
    assert (status, answer) == (200, {"accepted": 4})
    # the answer came after the commit: an independent reader sees everything at once
    assert daemon.query("SELECT run_name, status, pid, host FROM runs") == [
        ("über-run ✓", "error", 4242, "build-7")]
    status, step, _ = call(daemon.http_url, "GET", "/api/steps/9f3c2a1b00000001")
    assert status == 200
    assert (step["step_name"], step["status"], step["model"]) == (
        "llm 調べる", "error", "claude-haiku-4-5")
    assert (step["input_data"], step["output_data"]) == ({"q": "x"}, "partial")
    assert (step["tokens_input"], step["tokens_output"], step["tokens_cache_read"],
            step["cost_usd"]) == (12, 7, 3, 0.25)
    assert step["error"] == "TimeoutError: too slow" and step["traceback"] == "line 1\n"
    # times keep their nanoseconds: 1.5 s and one nanosecond after the run's start
    [(started, ended)] = daemon.query("SELECT started_at, ended_at FROM steps")
    assert abs((ended - started) - 1.5) < 1e-6
    assert daemon.health()["client_drops"] == {"queue_full": 3}


def test_a_resent_request_changes_nothing_and_gzip_is_taken(daemon):
    body = json.dumps({"events": events()}).encode()
    for data, headers in ((body, {}), (gzip.compress(body), {"Content-Encoding": "gzip"})):
        status, answer, _ = post(daemon.http_url, data, headers)
        assert (status, answer) == (200, {"accepted": 4})
    assert daemon.query("SELECT count(*) FROM runs") == [(1,)]
    assert daemon.query("SELECT count(*) FROM steps") == [(1,)]


@pytest.mark.parametrize("case, body, code", [
    ("an id that is not lowercase hex",
     {"events": [{**events()[0], "run_id": RUN_ID.upper()}]}, "invalid_event"),
    ("a count SQLite cannot hold", {"events": [{**events()[2], "tokens_input": 2**63}]},
     "invalid_event"),
    ("a float where an integer goes", {"events": [{**events()[0], "start_ns": 1.0}]},
     "invalid_event"),
    ("more than 1000 events", {"events": [events()[0]] * 1001}, "invalid_event"),
    ("a repeated key", '{"events": [{"type": "run_start", "type": "run_start", '
     f'"run_id": "{RUN_ID}", "name": "x", "start_ns": 1}}]}}', "invalid_event"),
    ("not JSON", "{events: []}", "malformed"),
])
def test_a_request_that_breaks_a_rule_stores_nothing_and_names_the_code(daemon, case, body,
                                                                       code):
    # the good events beside the bad one are refused with it, as a batch is on the socket
    data = body.encode() if isinstance(body, str) else json.dumps(
        {**body, "events": events("0" * 31 + "7", "0" * 15 + "7") + body["events"]}).encode()
    status, answer, _ = post(daemon.http_url, data)
    assert status == 400 and answer["code"] == code and answer["status"] == 400, answer
    assert daemon.query("SELECT count(*) FROM runs") == [(0,)]
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]


def test_beyond_loopback_ingest_needs_the_token_and_refuses_other_sites(daemon_factory):
    token = "ingest-token-0123456789"
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", token)).start()
    url = daemon.http_url.replace("0.0.0.0", "127.0.0.1")
    body = json.dumps({"events": events()}).encode()
    status, answer, _ = post(url, body)
    assert status == 401 and answer["status"] == 401
    status, answer, _ = post(url, body, {"Authorization": f"Bearer {token}",
                                         "Origin": "http://evil.example"})
    assert status == 403
    assert daemon.query("SELECT count(*) FROM runs") == [(0,)]
    status, answer, _ = post(url, body, {"Authorization": f"Bearer {token}"})
    assert (status, answer) == (200, {"accepted": 4})
    assert daemon.stop() == 0
