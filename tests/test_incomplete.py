"""Steps and runs of a process that went away without ending them become "incomplete"
(issue 10, point 8): on this host as soon as the process is gone, across daemon restarts,
and for processes the daemon cannot check, after ``--incomplete-after``. They show so in
the API, in search, and on the live stream; an end that arrives later still wins."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from api_support import get
from conftest import ROOT, wait_until
from protocol_support import batch, frame
from test_api_events import Stream

HANGS_IN_A_STEP = r'''
import time, traceforge_client as tf
with tf.trace_run("doomed") as run_id:
    with tf.trace_step("outer"):
        with tf.trace_step("inner"):
            assert tf.flush(10)
            print(run_id, flush=True)
            time.sleep(600)
'''


def start_doomed(daemon) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", HANGS_IN_A_STEP], env=daemon.env,
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def statuses(daemon, run_id: str) -> tuple:
    run = get(daemon.http_url, f"/api/runs/{run_id}")
    return run["run"]["status"], sorted(step["status"] for step in run["steps"])


def test_a_killed_clients_steps_and_run_become_incomplete_everywhere(daemon):
    stream = Stream(daemon.http_url)
    process, run_id = start_doomed(daemon)
    try:
        assert statuses(daemon, run_id) == ("running", ["running", "running"])
        kill(process)
        wait_until(lambda: statuses(daemon, run_id) == ("incomplete", ["incomplete"] * 2),
                   timeout=15, message="the run and its steps to become incomplete")
        names = {stream.next("step_incomplete", timeout=5)[1]["step_id"] for _ in range(2)}
        _, run_event, _ = stream.next("run_incomplete", timeout=5)
    finally:
        stream.close()
        if process.poll() is None:
            kill(process)
    assert run_event == {"type": "run_incomplete", "run_id": run_id, "status": "incomplete"}
    found = get(daemon.http_url, "/api/search", status="incomplete")["steps"]
    assert {s["step_id"] for s in found} == names and len(names) == 2
    listed = get(daemon.http_url, "/api/runs", status="incomplete")["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert get(daemon.http_url, "/api/search", status="running")["steps"] == []


def test_a_process_that_died_while_the_daemon_was_down_is_swept_at_start(daemon):
    process, run_id = start_doomed(daemon)
    try:
        assert daemon.stop() == 0
        kill(process)  # the daemon is down: nobody sees it go
        daemon.start()
        wait_until(lambda: statuses(daemon, run_id) == ("incomplete", ["incomplete"] * 2),
                   timeout=15, message="the start-up sweep")
    finally:
        if process.poll() is None:
            kill(process)


def test_a_process_the_daemon_cannot_check_is_incomplete_after_the_timeout(daemon_factory,
                                                                            peers):
    daemon = daemon_factory(("--incomplete-after", "5")).start()
    now = time.time_ns()
    old, recent = now - 60 * 10**9, now  # one step started a minute ago, one just now
    run = {"type": "run_start", "run_id": "a" * 32, "name": "remote", "start_ns": old}

    def step(step_id: str, start_ns: int) -> dict:
        return {"type": "step_start", "run_id": "a" * 32, "step_id": step_id, "name": "s",
                "start_ns": start_ns}

    peer = peers(daemon.socket)
    peer.handshake(pid=77, host="another-machine")
    peer.send(frame(batch(run, step("1" * 16, old), step("2" * 16, recent))))
    assert peer.read() == {"type": "ack", "seq": 1}
    peer.close()  # without a bye, from a host whose processes the daemon cannot see
    wait_until(lambda: daemon.query("SELECT step_id, status FROM steps ORDER BY step_id") == [
        ("1" * 16, "incomplete"), ("2" * 16, "running")], timeout=10,
        message="the old step to become incomplete")
    assert daemon.query("SELECT status FROM runs") == [("incomplete",)]

    # The process was only slow: its end arrives after all, and wins.
    late = peers(daemon.socket)
    late.handshake(pid=77, host="another-machine")
    late.send(frame(batch({**step("1" * 16, old), "type": "step_end", "end_ns": now},
                          {**run, "type": "run_end", "end_ns": now})))
    assert late.read() == {"type": "ack", "seq": 1}
    assert daemon.query("SELECT status FROM steps WHERE step_id = ?", ("1" * 16,)) == [("ok",)]
    assert daemon.query("SELECT status FROM runs") == [("success",)]


def test_a_connected_process_on_this_host_is_left_running(daemon):
    process, run_id = start_doomed(daemon)
    try:
        daemon.process.send_signal(signal.SIGTERM)  # a stop and a start sweep everything
        daemon.process.wait(30)
        daemon.start()
        # The start-up sweep runs in the writer before any batch: once this is stored, it
        # has looked at the doomed process, which is alive, and left it alone.
        daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('probe'):\n"
                          "    pass\nassert tf.flush(10)")
        assert statuses(daemon, run_id) == ("running", ["running", "running"])
    finally:
        kill(process)

