"""The single writer survives anything one batch can do (issue 10, point 1): the batch the
database refuses gets an error naming it, every other batch is committed and acked, and
if the writer thread ever dies anyway, health says so and a new writer takes over (or,
after repeated deaths, the daemon exits non-zero for a supervisor to restart it).

A batch the database refuses is made with the writer's fault switch
(``traceforge_daemon/storage/faults.py``): the decoder already refuses every value SQLite
cannot hold (tests/test_protocol_rejections.py), so no event off the wire can do it."""

from __future__ import annotations

import queue
import sqlite3

import msgspec

from conftest import wait_until
from protocol_support import STEP_END, T0, batch, frame
from traceforge_protocol import wire
from traceforge_daemon.storage import faults
from traceforge_daemon.storage.checkpointer import Checkpointer
from traceforge_daemon.storage.writer import WriteBatch, Writer


def run_start(run_id: str, name: str) -> dict:
    return {"type": "run_start", "run_id": run_id, "name": name, "start_ns": T0}


def run_id(n: int) -> str:
    return f"{n:032x}"


def first_frame(peer, types=("ack", "error")) -> dict:
    message = peer.read()
    assert message is not None and message["type"] in types, message
    return message


def stored_runs(daemon) -> set:
    return {name for (name,) in daemon.query("SELECT run_name FROM runs")}


def test_a_batch_the_database_refuses_fails_alone_and_ingest_goes_on(daemon_factory, peers):
    daemon = daemon_factory(env={faults.TRACEFORGE_FAULTS: "apply_error=poison"})
    bad = [run_start(run_id(2), "poison")]
    daemon.start()
    sender = peers(daemon.socket)
    sender.handshake(pid=4242, host="elsewhere")
    other = peers(daemon.socket)
    other.handshake()
    sender.send(frame(batch(run_start(run_id(1), "before"), seq=1))
                + frame(batch(*bad, seq=2))
                + frame(batch(run_start(run_id(3), "after"), seq=3)))
    other.send(frame(batch(run_start(run_id(4), "other connection"), seq=1)))

    assert first_frame(sender) == {"type": "ack", "seq": 1}
    error = first_frame(sender)
    assert (error["type"], error["code"], error["seq"]) == ("error", "storage_rejected", 2)
    assert error["retryable"] is False and error["fatal"] is True
    assert sender.read_until_closed() == []  # no ack can cover the refused batch
    assert first_frame(other) == {"type": "ack", "seq": 1}

    # The writer lives on: a new connection's batch commits.
    again = peers(daemon.socket)
    again.handshake()
    again.send(frame(batch(run_start(run_id(5), "later"), seq=1)))
    assert first_frame(again) == {"type": "ack", "seq": 1}
    assert stored_runs(daemon) >= {"before", "other connection", "later"}
    assert "poison" not in stored_runs(daemon)
    health = daemon.health()
    assert health["status"] == "degraded" and health["batches_rejected"] == 1
    assert health["writer"] == {"running": True, "restarts": 0}
    assert [r["code"] for r in health["reasons"]] == ["storage_errors_recent"]
    assert "refused batch 2 from pid 4242 on elsewhere for good" in daemon.log()


def test_in_one_transaction_only_the_bad_batch_is_refused(tmp_path):
    """Three batches from two connections committed together: the writer tries them one
    by one after the failure, and acks the two good ones."""
    path = str(tmp_path / "w.db")
    settled: "queue.Queue" = queue.Queue()
    checkpointer = Checkpointer(path)
    writer = Writer(path, checkpointer, lambda ok, failed: settled.put((ok, failed)),
                    lambda exc, held: settled.put(("died", exc)))
    writer.faults = faults.Faults(apply_error="poison")
    decode = wire.client_message_decoder.decode
    events = [decode(msgspec.msgpack.encode(batch(run_start(run_id(n), name))))
              .events for n, name in ((1, "a"), (2, "poison"), (3, "b"))]
    items = [WriteBatch("conn-a", 1, events[0], 1, "h"), WriteBatch("conn-a", 2, events[1], 1, "h"),
             WriteBatch("conn-b", 1, events[2], 2, "h")]
    for item in items:
        writer.submit(item)  # all queued before the thread starts: one transaction
    checkpointer.start()
    writer.start()
    committed, failed = settled.get(timeout=10)
    writer.stop()
    checkpointer.stop()
    assert committed == [items[0], items[2]]
    assert [(item, problem.code, problem.retryable) for item, problem in failed] == [
        (items[1], wire.STORAGE_REJECTED, False)]
    assert writer.stats.transactions == 2  # the failed one is not counted
    conn = sqlite3.connect(path)
    assert sorted(conn.execute("SELECT run_name FROM runs")) == [("a",), ("b",)]
    conn.close()


def test_a_writer_thread_that_dies_is_reported_and_replaced(daemon_factory, peers):
    daemon = daemon_factory(env={faults.TRACEFORGE_FAULTS: "writer_crash_once=crash"})
    daemon.start()
    peer = peers(daemon.socket)
    peer.handshake()
    peer.send(frame(batch(run_start(run_id(1), "crash"), seq=1)))
    error = first_frame(peer)
    assert (error["code"], error["seq"], error["retryable"]) == ("storage_error", 1, True)
    assert error["retry_after_ms"] == 2000
    health = wait_until(lambda: (h := daemon.health())["writer"]["restarts"] == 1 and h)
    assert health["status"] == "degraded" and health["writer"]["running"] is True
    assert "writer_restarted" in [r["code"] for r in health["reasons"]]
    # The client resends, as told, and the new writer commits it.
    resend = peers(daemon.socket)
    resend.handshake()
    resend.send(frame(batch(run_start(run_id(1), "crash"), seq=1)))
    assert first_frame(resend) == {"type": "ack", "seq": 1}
    assert stored_runs(daemon) == {"crash"}
    assert "the database writer stopped: InjectedCrash" in daemon.log()


def test_a_writer_that_keeps_dying_makes_the_daemon_exit_non_zero(daemon_factory, peers):
    daemon = daemon_factory(env={faults.TRACEFORGE_FAULTS: "writer_crash=crash"})
    daemon.start()
    for attempt in range(10):  # a client resending after each storage_error
        try:
            peer = peers(daemon.socket)
            peer.handshake()
        except (OSError, AssertionError):
            break  # the daemon has gone
        peer.send(frame(batch(run_start(run_id(1), "crash"), seq=1)))
        error = peer.read()
        if error is None:
            break
        assert error["code"] in ("storage_error", "shutting_down"), error
    assert daemon.process.wait(30) == 1
    log = daemon.log()
    assert "the database writer stopped 4 times within 60 s" in log
    assert "exiting with an error" in log and not (daemon.home / "daemon.json").exists()


def test_no_batch_is_lost_when_the_writer_restarts_under_load(daemon_factory):
    """A real client tracing steadily through one writer death: every step is stored once."""
    daemon = daemon_factory(env={faults.TRACEFORGE_FAULTS: "writer_crash_once=crash"})
    daemon.start()
    code = r'''
import threading, time, traceforge_client as tf
def crash_soon():
    time.sleep(0.3)
    with tf.trace_run("crash"):
        pass
threading.Thread(target=crash_soon).start()
with tf.trace_run("steady"):
    for i in range(3000):
        with tf.trace_step("s", input_data={"i": i}):
            pass
        if i % 100 == 0:
            time.sleep(0.02)
assert tf.flush(60), tf.stats()
print(tf.stats()["dropped_total"])
'''
    assert daemon.run_python(code).stdout.strip() == "{}"
    assert daemon.query("SELECT count(*), count(DISTINCT step_id) FROM steps "
                        "WHERE status = 'ok'") == [(3000, 3000)]
    assert daemon.health()["writer"]["restarts"] == 1
