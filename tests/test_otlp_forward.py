"""Forwarding to an OpenTelemetry collector: the daemon sends every ended step to a real
OTLP/HTTP receiver the test runs (tests/otlp_support.py), through an outage, a 429 with
Retry-After and a daemon killed in the middle, and every span arrives once, in the
right trace with the right parent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from conftest import wait_until
from otlp_support import OtlpReceiver, attributes

TRACED = r'''
import json, sys
import traceforge_client as tf
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
for n in range(runs):
    with tf.trace_run(f"pipeline {n}"):
        with tf.trace_step("plan"):
            with tf.trace_step("call model", model="claude-haiku-4-5") as r:
                r["tokens_input"], r["tokens_output"] = 100, 20
            for i in range(3):
                with tf.trace_step("tool", input_data={"i": i}) as r:
                    r["output"] = i
        try:
            with tf.trace_step("flaky"):
                raise RuntimeError("flaked")
        except RuntimeError:
            pass
assert tf.flush(30)
'''
STEPS_PER_RUN = 6


@pytest.fixture
def receiver():
    made = OtlpReceiver().up()
    yield made
    made.close()


def stored_steps(daemon) -> dict[str, tuple]:
    """step id -> (run id, parent step id) of every ended step in the database."""
    return {step: (run, parent) for step, run, parent in daemon.query(
        "SELECT step_id, run_id, parent_step_id FROM steps WHERE status != 'running'")}


def arrived(receiver) -> dict[str, tuple]:
    return {span.span_id.hex(): (span.trace_id.hex(), span.parent_span_id.hex() or None)
            for span in receiver.spans()}


def all_arrived(daemon, receiver):
    steps = stored_steps(daemon)
    return steps and arrived(receiver) == steps


def test_every_ended_step_reaches_the_collector_in_its_trace_under_its_parent(daemon_factory,
                                                                              receiver):
    daemon = daemon_factory((
        "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}",  # /v1/traces is added
        "--otlp-header", "Authorization=Bearer collector-token",
        "--otlp-header", "X-Scope-OrgID=team-a")).start()
    daemon.run_python(TRACED)
    wait_until(lambda: all_arrived(daemon, receiver), message="every span at the collector")
    assert len(stored_steps(daemon)) == 2 * STEPS_PER_RUN
    assert not [span for span, count in Counter(
        s.span_id.hex() for s in receiver.spans()).items() if count > 1]
    first = receiver.requests[0]
    assert first.content_type == "application/x-protobuf" and first.encoding == "gzip"
    assert first.headers["Authorization"] == "Bearer collector-token"
    assert first.headers["X-Scope-OrgID"] == "team-a"
    assert {"service.name": "traceforge"} == first.resources[0]
    model = next(s for s in receiver.spans() if s.name == "call model")
    assert attributes(model)["gen_ai.usage.input_tokens"] == 100
    assert next(s for s in receiver.spans() if s.name == "flaky").status.code == 2
    health = wait_until(lambda: (h := daemon.health()["forwarder"])["lag_steps"] == 0 and h)
    assert health["spans_sent"] == 2 * STEPS_PER_RUN and health["possible_duplicates"] == 0
    assert health["endpoint"] == receiver.url and health["lag_seconds"] == 0
    assert daemon.stop() == 0


HELD_OPEN = r'''
import os, sys, time
import traceforge_client as tf
with tf.trace_run("held"):
    with tf.trace_step("long step"):
        with tf.trace_step("quick child"):
            pass
        assert tf.flush(30)
        print("child sent", flush=True)
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.01)
assert tf.flush(30)
'''


def test_a_running_step_is_forwarded_when_it_ends(daemon_factory, receiver, tmp_path):
    daemon = daemon_factory(("--otlp-endpoint", receiver.url)).start()
    marker = tmp_path / "go"
    program = subprocess.Popen([sys.executable, "-c", HELD_OPEN, str(marker)],
                               env=daemon.env, cwd=daemon.cwd, stdout=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline().strip() == "child sent"
        wait_until(lambda: [s.name for s in receiver.spans()] == ["quick child"])
        assert daemon.query("SELECT status FROM steps WHERE step_name = 'long step'") == [
            ("running",)]
        marker.touch()
        assert program.wait(60) == 0
    finally:
        if program.poll() is None:
            program.kill()
    wait_until(lambda: sorted(s.name for s in receiver.spans()) == ["long step", "quick child"])
    assert daemon.stop() == 0


def test_nothing_is_lost_or_doubled_through_an_outage_a_429_and_a_daemon_killed_midway(
        daemon_factory, receiver):
    daemon = daemon_factory(("--otlp-endpoint", receiver.url, "--otlp-batch-spans", "8"))
    daemon.start()
    receiver.down()  # the collector is unreachable: connections are refused
    daemon.run_python(TRACED)
    wait_until(lambda: daemon.health()["forwarder"]["state"] == "retrying",
               message="the forwarder retrying")
    health = daemon.health()["forwarder"]
    assert health["lag_steps"] == 2 * STEPS_PER_RUN and health["last_error"]
    receiver.answers = [(429, {"Retry-After": "1"})]
    receiver.up()  # back, on the same port, but rate limiting the first request
    wait_until(lambda: all_arrived(daemon, receiver), message="the first spans after the outage")
    limited, after = receiver.requests[0], receiver.requests[1]
    assert limited.status == 429 and after.at - limited.at >= 1.0  # Retry-After honoured

    # The collector fails every request; the daemon is killed while it retries a batch.
    receiver.answers = [(503, {})] * 10_000
    before = len(receiver.requests)
    daemon.run_python(TRACED, args=("3",))
    wait_until(lambda: len(receiver.requests) > before, message="a batch attempted")
    daemon.kill()
    receiver.answers = []
    daemon.start()  # same database: the cursor says where to go on from
    wait_until(lambda: all_arrived(daemon, receiver) and len(stored_steps(daemon)) == 5 * STEPS_PER_RUN,
               timeout=60, message="every span after the restart")
    counts = Counter(span.span_id.hex() for span in receiver.spans())
    assert set(counts) == set(stored_steps(daemon)) and max(counts.values()) == 1
    health = daemon.health()["forwarder"]
    assert health["possible_duplicates"] >= 1  # the batch in flight at the kill was counted
    assert daemon.stop() == 0


def test_json_forwarding_and_a_span_the_collector_refuses_for_good(daemon_factory, receiver):
    daemon = daemon_factory(("--otlp-endpoint", receiver.url, "--otlp-protocol", "http/json"))
    daemon.start()
    receiver.answers = [(400, {})] * 5  # refused: halved down to single spans, then skipped
    daemon.run_python(TRACED, args=("1",))
    wait_until(lambda: daemon.health()["forwarder"]["lag_steps"] == 0 and receiver.spans(),
               message="forwarding past the refused span")
    assert receiver.requests[-1].content_type == "application/json"
    health = daemon.health()["forwarder"]
    got = {span.span_id.hex() for span in receiver.spans()}
    assert health["spans_rejected"] == STEPS_PER_RUN - len(got) >= 1
    assert got < set(stored_steps(daemon))
    assert daemon.stop() == 0


@pytest.mark.parametrize("flags, words", [
    (("--otlp-endpoint", "collector:4318"), "http://"),
    (("--otlp-endpoint", "http://c:4318", "--otlp-header", "no-equals-sign"), "NAME=VALUE"),
    (("--otlp-endpoint", "http://c:4318", "--otlp-protocol", "grpc"), "http/protobuf"),
])
def test_bad_forwarding_flags_get_a_clear_message(daemon_factory, flags, words):
    daemon = daemon_factory()
    result = subprocess.run(
        [sys.executable, "-m", "traceforge_daemon", "start", "--http", "127.0.0.1:0", *flags],
        env=daemon.env, cwd=daemon.cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and words in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_status_shows_the_forwarders_lag_and_counts(daemon_factory, receiver):
    daemon = daemon_factory(("--otlp-endpoint", receiver.url)).start()
    daemon.run_python(TRACED, args=("1",))
    wait_until(lambda: all_arrived(daemon, receiver))

    def status() -> dict:
        result = subprocess.run([sys.executable, "-m", "traceforge_daemon", "status"],
                                env=daemon.env, cwd=daemon.cwd, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["forwarder"]

    shown = wait_until(lambda: (forwarder := status())["spans_sent"] == STEPS_PER_RUN
                       and forwarder)
    assert (shown["lag_steps"], shown["lag_seconds"], shown["last_error"]) == (0, 0.0, None)
    assert daemon.stop() == 0
