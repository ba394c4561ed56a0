"""Every traced event ends acked or counted as dropped, whatever the connection does.

A real traced program sends to a scripted daemon (tests/scripted_daemon.py) that breaks
the connection at one point of the exchange after another: before hello_ok, right after
it, after reading some batches, halfway through an ack, while the client resends what was
not acked, twice in a row during that resend, with an error frame. Once the script is used
up the daemon behaves, and then:

- flush() returns True, and nothing is left queued or unacked;
- acked + dropped == traced, by the client's own counters;
- what the client counts as acked is what the daemon acked, each event once, however many
  times a resend made the daemon ack it; what it counts as rejected is what the daemon
  refused; and every traced event reached the daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

import scripted_daemon as sd

STEPS = 10_000
TRACED = 2 * STEPS + 2  # a run start and end, and a start and end per step

PROGRAM = r'''
import json, sys
import traceforge_client as tf

with tf.trace_run("faults"):
    for j in range(int(sys.argv[1])):
        with tf.trace_step("step", input_data={"j": j}):
            pass
delivered = tf.flush(60)
print(json.dumps({"delivered": delivered, **tf.stats()}))
'''

S = sd.step
SCENARIOS = {
    "closed before hello_ok, twice": ([S(hello_ok=False), S(hello_ok=False)], ()),
    "closed right after hello_ok": ([S()], ()),
    "closed after reading 3 batches": ([S(batches=3)], ()),
    "closed after acking 3 batches": ([S(batches=3, ack=True)], ()),
    "closed halfway through an ack": ([S(batches=4, then=sd.half_an_ack)], ()),
    "closed during the resend": ([S(batches=8), S(batches=2)], (1,)),
    "closed twice in a row during the resend": (
        [S(batches=8), S(batches=2), S(batches=1)], (1, 2)),
    "acks repeated and going backwards": (
        [S(batches=3, ack=True, then=sd.stale_acks), S(batches=2)], ()),
    "a retryable storage error": ([S(batches=3, then=sd.storage_error)], ()),
    "the daemon shutting down": ([S(batches=5, ack=True, then=sd.shutting_down)], ()),
    "a batch refused for good": ([S(batches=2, then=sd.refuse_last)], ()),
    "a batch refused for good, without its seq": (
        [S(batches=3, then=sd.refuse_last_unnamed)], ()),
    "all of it in a row": (
        [S(hello_ok=False), S(), S(batches=6), S(batches=1, then=sd.half_an_ack),
         S(batches=2), S(batches=3, ack=True, then=sd.stale_acks),
         S(batches=2, then=sd.refuse_last), S(batches=4), S(batches=1),
         S(batches=2, then=sd.storage_error), S(batches=1, ack=True, then=sd.shutting_down)],
        (4, 8)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_event_ends_acked_or_counted_dropped_and_flush_tells_the_truth(
        scenario, short_tmp):
    script, resend_connections = SCENARIOS[scenario]
    path = str(short_tmp / "scripted.sock")
    with sd.ScriptedDaemon(path, script) as daemon:
        result = subprocess.run(
            [sys.executable, "-c", PROGRAM, str(STEPS)], cwd=ROOT, capture_output=True,
            text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                 "TRACEFORGE_ADDRESS": f"unix://{path}", "TRACEFORGE_HOME": str(short_tmp)},
        )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)

    # The scenario happened as scripted, and the client kept to the protocol.
    assert daemon.script_done and len(daemon.connections) > len(script)
    for index in resend_connections:
        assert daemon.connections[index].resent >= 1, f"connection {index} resent nothing"
    assert [c.problems for c in daemon.connections if c.problems] == []

    # The client's own account.
    dropped = sum(stats["dropped_total"].values())
    assert stats["delivered"] is True, stats
    assert (stats["queued"], stats["inflight_batches"]) == (0, 0), stats
    assert stats["acked_events"] + dropped == TRACED, stats

    # ...matches what the daemon saw: each acked event counted once, refusals as rejected.
    assert stats["acked_events"] == len(daemon.acked), stats
    assert stats["dropped_total"] == ({"rejected": len(daemon.refused)} if daemon.refused else {})
    assert not set(daemon.acked) & daemon.refused, "a refused batch was sent again"
    assert len(set(daemon.acked) | daemon.refused) == TRACED


def test_the_client_waits_as_long_as_the_daemon_asks_before_reconnecting(short_tmp):
    """retry_after_ms on a storage error and on a refusal at the connection limit: the
    client's own backoff after a break is 50 ms, so only the daemon's hint explains a wait
    of 0.6 s (retry_after_ms, less nothing: the jitter only ever adds)."""
    path = str(short_tmp / "scripted.sock")
    script = [S(batches=2, then=sd.storage_error_wait(600)), sd.overloaded(600)]
    with sd.ScriptedDaemon(path, script) as daemon:
        result = subprocess.run(
            [sys.executable, "-c", PROGRAM, "2000"], cwd=ROOT, capture_output=True,
            text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                 "TRACEFORGE_ADDRESS": f"unix://{path}", "TRACEFORGE_HOME": str(short_tmp)},
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["delivered"] is True
    first, refused, served = daemon.connections[:3]
    assert refused.opened_at - first.closed_at >= 0.6
    assert served.opened_at - refused.closed_at >= 0.6
