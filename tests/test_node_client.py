"""The Node.js client (clients/node) against a real daemon, over the Unix socket and over
TCP: what it sends is stored exactly as sent, as the HTTP API shows it. Also runs the
client's own tests (`npm test`: its parts, and protocol.md's test vectors read from the
document). Skipped when node is missing locally; in CI (CI set) a missing node fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from api_support import get
from conftest import ROOT

CLIENT = ROOT / "clients" / "node"
PROGRAM = ROOT / "tests" / "programs" / "node_pipeline.mjs"
NODE, NPM = shutil.which("node"), shutil.which("npm")
T0, TICK = 1767225600123456789, 1_000_000_007


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the client's one npm package installed from its package-lock.json."""
    if not (NODE and NPM):
        if os.environ.get("CI"):
            pytest.fail("node and npm are missing: .ci/run should have installed them")
        pytest.skip("no node and npm on PATH (apt-get install nodejs npm)")
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout
    major = int(re.match(r"v(\d+)", version).group(1))
    if major < 20:
        message = f"the Node.js client needs Node 20 or newer; this is {version.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not (CLIENT / "node_modules" / "@msgpack" / "msgpack").is_dir():
        # From the lock file, exactly: the registry is reachable wherever the tests run.
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True,
                       capture_output=True, timeout=300)
    return NODE


def test_the_node_clients_own_tests_pass(node):
    result = subprocess.run([NPM, "test"], cwd=CLIENT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.M), result.stdout[-2000:]


def run_pipeline(node: str, daemon, address: str, label: str) -> dict:
    env = {**daemon.env, "TRACEFORGE_ADDRESS": address}
    result = subprocess.run([node, str(PROGRAM), label], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_nested_run_from_node_is_stored_exactly_as_sent(node, daemon_factory, transport):
    daemon = daemon_factory(("--tcp", "127.0.0.1:0")).start()
    address = f"unix://{daemon.socket}" if transport == "unix" else daemon.state().tcp
    sent = run_pipeline(node, daemon, address, transport)
    assert sent["flushed"] is True and sent["rethrown"] is True and sent["tool_result"] == 42
    assert sent["stats"]["dropped"] == {} and sent["stats"]["inflightBatches"] == 0
    # The clock the program gave the client: the n-th reading is T0 + n * TICK.
    assert sent["times"][0] == str(T0 + TICK)

    assert re.fullmatch(r"[0-9a-f]{32}", sent["run_id"])
    detail = get(daemon.http_url, f"/api/runs/{sent['run_id']}")
    run = detail["run"]
    assert run["run_name"] == f"résumé ✓ 日本語 🚀 {transport}"
    assert run["status"] == "error"  # a step failed, though the run caught its error
    assert run["metadata"] == {"user": "ada"} and run["pid"] == sent["pid"]
    assert abs(run["started_at"] - (T0 + TICK) / 1e9) < 1e-6
    assert run["unpriced_steps"] == 1 and run["cost_usd"] == pytest.approx(0.0123)
    assert (run["tokens_input"], run["tokens_output"]) == (1210, 345)

    steps = {step["step_name"]: step for step in detail["steps"]}
    assert set(steps) == {"plan — étape 1", "lookup 🔎", "flaky", "tool", "local_llm"}
    assert all(re.fullmatch(r"[0-9a-f]{16}", step["step_id"]) for step in steps.values())
    plan, lookup = steps["plan — étape 1"], steps["lookup 🔎"]
    assert (plan["step_id"], lookup["step_id"]) == (sent["plan"], sent["lookup"])
    assert lookup["parent_step_id"] == plan["step_id"]  # found across awaits and a timer
    assert {steps[n]["parent_step_id"] for n in ("plan — étape 1", "flaky", "tool", "local_llm")} == {None}
    assert detail["roots"] == [sent["plan"], sent["flaky"], sent["tool"], sent["local_llm"]]
    # Latencies come from the integer nanoseconds sent: 3 and 1 ticks, to the nanosecond.
    assert plan["latency_ms"] == 3 * TICK / 1e6 and lookup["latency_ms"] == TICK / 1e6
    assert steps["tool"]["cost_usd"] == 0.0 and steps["local_llm"]["cost_usd"] is None

    step = get(daemon.http_url, f"/api/steps/{sent['plan']}")
    assert step["input_data"] == {"question": "¿qué?"}
    assert step["output_data"] == {"plan": ["a", "b"]}
    assert step["metadata"] == {"attempt": 1}
    assert step["model"] == "claude-haiku-4-5"  # the end's model replaces the start's
    assert (step["tokens_input"], step["tokens_output"], step["tokens_cache_read"],
            step["tokens_cache_write"], step["cost_usd"]) == (1200, 345, 50, 7, 0.0123)
    assert step["status"] == "ok" and step["pid"] == sent["pid"]

    step = get(daemon.http_url, f"/api/steps/{sent['lookup']}")
    assert step["input_data"] == {"big": "λ" * 300_000}  # 600 kB, every character kept
    assert step["output_data"] == {"hits": [1, 2, 3]}

    step = get(daemon.http_url, f"/api/steps/{sent['flaky']}")
    assert (step["status"], step["error_type"]) == ("error", "RangeError")
    assert step["error"] == "RangeError: upstream timed out ⏱"
    assert "RangeError: upstream timed out ⏱" in step["traceback"]
    assert get(daemon.http_url, f"/api/steps/{sent['tool']}")["output_data"] == 42
