"""The daemon dies, is absent, or is slow: the traced programs carry on and lose nothing
they were promised (every acked step is stored; drops are counted and reported)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import ROOT, wait_until
from sender_support import SteadySenders

PROGRAMS = ROOT / "tests" / "programs"


def test_sigkill_mid_stream_loses_no_acked_step_and_ends_exact(daemon_factory, short_tmp):
    daemon = daemon_factory().start()
    steps = 1500
    with SteadySenders(daemon, 4, steps, short_tmp) as senders:
        senders.wait_acked(200, timeout=60)
        daemon.kill()
        acked_before_kill = senders.acked()
        assert all(acked < steps for acked in acked_before_kill), "killed too late to matter"

        # What the dead daemon had acked must already be in the file it left behind.
        for index, acked in enumerate(acked_before_kill):
            [(stored,)] = daemon.query(
                "SELECT count(*) FROM steps s JOIN runs r USING (run_id) "
                "WHERE r.run_name = ? AND s.status = 'ok'", (f"sender-{index}",)
            )
            assert stored >= acked, f"sender {index}: {acked} acked but only {stored} stored"

        daemon.start()  # same home, same database: the clients reconnect and resend
        finals = senders.finish()
    for final in finals:
        assert final["delivered"] is True and final["dropped"] == {}
    for index in range(4):
        [(count, distinct, ok, run_status)] = daemon.query(
            "SELECT count(*), count(DISTINCT s.step_id), sum(s.status = 'ok'), r.status "
            "FROM steps s JOIN runs r USING (run_id) WHERE r.run_name = ?", (f"sender-{index}",)
        )
        assert (count, distinct, ok, run_status) == (steps, steps, steps, "success")
        js = [json.loads(row[0])["j"] for row in daemon.query(
            "SELECT s.input_data FROM steps s JOIN runs r USING (run_id) WHERE r.run_name = ?",
            (f"sender-{index}",))]
        assert sorted(js) == list(range(steps))
    assert daemon.query("PRAGMA integrity_check") == [("ok",)]


def test_no_daemon_program_runs_and_exits_without_waiting_for_the_flush_deadline(short_tmp):
    code = (
        "import time, traceforge_client as tf\n"
        "tf.init(shutdown_timeout=30)\n"
        "with tf.trace_run('nobody listening'):\n"
        "    for j in range(20000):\n"
        "        with tf.trace_step('step', input_data={'j': j}):\n"
        "            pass\n"
        "print('done')\n"
    )
    env = {"TRACEFORGE_HOME": str(short_tmp / "no-daemon-here"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    # With a 30 s shutdown deadline, waiting for it would take 30 s; it must not wait at all.
    assert elapsed < 15, f"exit took {elapsed:.1f} s: it waited for an absent daemon"
    warnings = [line for line in result.stderr.splitlines() if "traceforge" in line]
    assert len(warnings) == 2, result.stderr  # one when it found no daemon, one at exit
    assert "traceforge-daemon start" in warnings[0]
    assert "40002 events were not delivered" in warnings[1]


def test_drops_are_counted_by_reason_and_reported_once_a_daemon_appears(daemon_factory):
    daemon = daemon_factory()
    program = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "drops_then_daemon.py")],
        env=daemon.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert program.stdout.readline().strip() == "traced"
        daemon.start()
        stdout, stderr = program.communicate(timeout=60)
    finally:
        if program.poll() is None:
            program.kill()
    assert program.returncode == 0, stderr
    final = json.loads(stdout.strip().splitlines()[-1])
    assert final["delivered"] is True
    assert final["dropped"] == {}  # reported with the batches, confirmed by their acks
    total_events = 1 + 2 * 5000 + 1
    health = wait_until(lambda: (h := daemon.health())["client_drops"] and h)
    assert health["client_drops"] == {"queue_full": total_events - 1000}
    assert health["events_committed"] == 1000
    assert daemon.query("SELECT reason, count FROM client_drops") == [
        ("queue_full", total_events - 1000)
    ]


def test_a_batch_the_daemon_rejects_is_dropped_alone_and_the_client_carries_on(daemon):
    code = r'''
import json
import traceforge_client as tf
from traceforge_client import runtime
from traceforge_protocol import wire as protocol
with tf.trace_run("before"):
    pass
assert tf.flush(10)
# Events our tracer never builds, as a buggy or foreign client might send them:
runtime.emit(protocol.StepStart(run_id="not-a-run-id", step_id="0" * 16, name="x", start_ns=1))
tf.flush(10)                  # that batch is refused...
runtime.emit(protocol.StepStart(run_id="a" * 32, step_id="1" * 16, name="bad \udce9", start_ns=1))
with tf.trace_run("after"):   # ...and everything after it still arrives
    pass
assert tf.flush(10), tf.stats()
print(json.dumps(tf.stats()))
'''
    stats = json.loads(daemon.run_python(code).stdout)
    assert stats["dropped_total"] == {"rejected": 1, "encode_error": 1}
    assert stats["dropped"] == {}
    assert sorted(daemon.query("SELECT run_name FROM runs")) == [("after",), ("before",)]
    assert daemon.health()["client_drops"] == {"rejected": 1, "encode_error": 1}


def test_a_sender_thread_that_cannot_start_is_tried_again(daemon):
    # Thread.start can fail (resource limits, interpreter shutdown); the next event retries.
    code = r'''
import threading
import traceforge_client as tf

real_start, failures = threading.Thread.start, []

def flaky_start(thread):
    if thread.name == "traceforge-sender" and not failures:
        failures.append(thread)
        raise RuntimeError("can't start new thread")
    return real_start(thread)

threading.Thread.start = flaky_start
with tf.trace_run("late sender"):
    with tf.trace_step("first"):
        pass
assert tf.flush(10), tf.stats()
print(len(failures), tf.stats()["dropped_total"])
'''
    assert daemon.run_python(code).stdout.split() == ["1", "{}"]
    assert daemon.query("SELECT step_name FROM steps") == [("first",)]
