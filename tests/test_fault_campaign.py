"""Faults against a daemon under load from several traced processes (issue 10, acceptance):
killed with SIGKILL and restarted, or frozen with SIGSTOP for 10 s. Every step ends stored
exactly once, or counted as dropped, and the counts add up exactly. (A full disk is in
test_storage_faults.py, a client killed mid-step in test_incomplete.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import ROOT, wait_until
from sender_support import SteadySenders


PACED = r'''
import json, sys, time, traceforge_client as tf
name, steps, rate, queue = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
tf.init(max_queue_events=queue)
started = time.monotonic()
with tf.trace_run(name):
    for j in range(steps):
        with tf.trace_step("step", input_data={"j": j}):
            pass
        if j == 50:
            print("going", flush=True)
        delay = started + (j + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
delivered = tf.flush(90)
print(json.dumps({"delivered": delivered, "traced": 2 * steps + 2, **tf.stats()}), flush=True)
'''


def test_sigkill_and_restart_under_load_from_eight_processes_stores_each_step_once(
        daemon_factory, short_tmp):
    daemon = daemon_factory().start()
    processes, steps = 8, 1000
    with SteadySenders(daemon, processes, steps, short_tmp) as senders:
        senders.wait_acked(100, timeout=90)
        daemon.kill()
        assert any(a < steps for a in senders.acked()), "killed too late to matter"
        daemon.start()
        finals = senders.finish()
    for final in finals:
        assert final["delivered"] is True and final["dropped_total"] == {}, final
    rows = daemon.query(
        "SELECT r.run_name, count(*), count(DISTINCT s.step_id), sum(s.status = 'ok'), r.status "
        "FROM steps s JOIN runs r USING (run_id) GROUP BY r.run_name ORDER BY r.run_name")
    assert rows == [(f"sender-{i}", steps, steps, steps, "success") for i in range(processes)]
    assert daemon.query("SELECT count(*) FROM steps") == [(processes * steps,)]
    assert daemon.query("PRAGMA integrity_check") == [("ok",)]


def test_a_daemon_frozen_for_ten_seconds_loses_nothing_within_the_bound_and_counts_the_rest(
        daemon_factory):
    daemon = daemon_factory().start()
    # "roomy" buffers 100,000 events and traces about 3,000 in all; "tight" buffers 1,000
    # and traces about 5,000 while the daemon is frozen.
    plans = {"roomy": (1500, 100, 100_000), "tight": (4000, 300, 1000)}
    programs = {
        name: subprocess.Popen(
            [sys.executable, "-c", PACED, name, str(steps), str(rate), str(queue)],
            env=daemon.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (steps, rate, queue) in plans.items()}
    try:
        for program in programs.values():
            assert program.stdout.readline().strip() == "going"
        daemon.process.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(10)  # the fault itself: ten seconds of a daemon that does nothing
        daemon.process.send_signal(signal.SIGCONT)
        assert time.monotonic() - frozen_at >= 10
        finals = {}
        for name, program in programs.items():
            stdout, stderr = program.communicate(timeout=120)
            assert program.returncode == 0, stderr
            finals[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for program in programs.values():
            if program.poll() is None:
                program.kill()
        daemon.process.send_signal(signal.SIGCONT)

    def stored(name: str) -> tuple:
        [(steps,)] = daemon.query("SELECT count(*) FROM steps s JOIN runs r USING (run_id) "
                                  "WHERE r.run_name = ?", (name,))
        [(runs,)] = daemon.query("SELECT count(*) FROM runs WHERE run_name = ? AND "
                                 "status = 'success'", (name,))
        return steps, runs

    roomy, tight = finals["roomy"], finals["tight"]
    assert roomy["delivered"] is True and roomy["dropped_total"] == {}
    assert roomy["acked_events"] == roomy["traced"] == 2 * 1500 + 2
    assert stored("roomy") == (1500, 1)
    # Beyond its bound the tight one dropped, and counted every event it dropped.
    assert tight["delivered"] is True
    dropped = tight["dropped_total"]
    assert set(dropped) == {"queue_full"} and dropped["queue_full"] > 0
    assert tight["acked_events"] + dropped["queue_full"] == tight["traced"]
    # Acked means stored, once: each acked step end is exactly one finished step.
    assert daemon.query(
        "SELECT sum(s.status = 'ok'), count(*) - count(DISTINCT s.step_id) FROM steps s "
        "JOIN runs r USING (run_id) WHERE r.run_name = 'tight'") == [
        (tight["acked_step_ends"], 0)]
    health = wait_until(lambda: (h := daemon.health())["client_drops"] and h)
    assert health["client_drops"] == {"queue_full": dropped["queue_full"]}
