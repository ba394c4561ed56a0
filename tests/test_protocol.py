"""A real daemon spoken to by hand: sessions, acks after commit, storage rules, drop
counts and graceful stops. The client side uses only what protocol.md says: the preface
bytes, a big-endian length, and plain msgpack maps built as dicts, so these tests check
the document as much as the daemon."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import sqlite3

from conftest import wait_until
from protocol_support import (
    BAD_STEP,
    RUN_ID,
    RUN_START,
    STEP_END,
    STEP_ID,
    STEP_START,
    T0,
    Peer,
    ack_covering,
    batch,
    frame,
    one_row,
)


def test_a_hand_written_session_is_committed_before_each_ack(daemon, peers):
    peer = peers(daemon.socket)
    ok = peer.handshake(client="by-hand", lang="none", pid=4242, host="devbox", session="s-1")
    assert ok == {"type": "hello_ok", "version": 1, "server": "traceforge-daemon",
                  "server_version": ok["server_version"], "max_frame_bytes": 4_194_304,
                  "max_batch_events": 1000, "ack": "commit"}

    step_start = {**STEP_START, "input_json": '{"prompt":"Hi"}'}
    first = {**batch(RUN_START, seq=1), "dropped": {"queue_full": 3}}
    peer.send(frame(first) + frame(batch(step_start, seq=2)))
    acked = ack_covering(peer, 1)
    # An ack means committed: the rows are readable the moment it arrives, no waiting.
    assert one_row(daemon, "SELECT run_name, status, pid, host FROM runs") == (
        "summarize", "running", 4242, "devbox")
    assert one_row(daemon, "SELECT session, pid, host, reason, count FROM client_drops") == (
        "s-1", 4242, "devbox", "queue_full", 3)
    if acked < 2:
        ack_covering(peer, 2)
    assert one_row(daemon, "SELECT step_name, status, input_data FROM steps") == (
        "call_llm", "running", '{"prompt":"Hi"}')

    step_end = {**STEP_END, "output_json": '"Hello!"', "tokens_input": 12, "tokens_output": 5,
                "cost_usd": 0.25}
    run_end = {**RUN_START, "type": "run_end", "end_ns": T0 + 900_000_000}
    peer.send(frame(batch(step_end, seq=3)) + frame(batch(run_end, seq=4)))
    assert ack_covering(peer, 4) == 4
    assert one_row(
        daemon, "SELECT status, input_data, output_data, tokens_input, tokens_output, cost_usd, "
        "round(latency_ms, 3), pid, host FROM steps WHERE step_id = ?", (STEP_ID,),
    ) == ("ok", '{"prompt":"Hi"}', '"Hello!"', 12, 5, 0.25, 250.0, 4242, "devbox")
    assert one_row(daemon, "SELECT status, round(ended_at - started_at, 6) FROM runs") == (
        "success", 0.9)
    assert daemon.health()["client_drops"] == {"queue_full": 3}

    peer.send(frame({"type": "bye"}))
    assert peer.read_until_closed() == []


STEP_ROW = ("SELECT run_id, parent_step_id, step_name, input_data, output_data, status, "
            "round(latency_ms, 3) FROM steps")


def test_an_end_before_its_start_and_a_resend_with_new_seqs_leave_one_complete_row(daemon, peers):
    first = peers(daemon.socket)
    first.handshake()
    first.send(frame(batch({**STEP_END, "output_json": "[1]"}, seq=1)))
    assert ack_covering(first, 1) == 1
    assert one_row(daemon, "SELECT status, input_data, output_data FROM steps") == (
        "ok", None, "[1]")
    first.send(frame(batch({**STEP_START, "input_json": "[0]"}, seq=2)))
    assert ack_covering(first, 2) == 2
    stored = one_row(daemon, STEP_ROW)
    assert stored == (RUN_ID, None, "call_llm", "[0]", "[1]", "ok", 250.0)
    first.close()

    # A reconnect: the same events again, renumbered (seq need not start at 1 or be consecutive).
    second = peers(daemon.socket)
    second.handshake()
    second.send(frame(batch({**STEP_START, "input_json": "[0]"}, seq=7))
                + frame(batch({**STEP_END, "output_json": "[1]"}, seq=9)))
    assert ack_covering(second, 9) == 9
    assert one_row(daemon, STEP_ROW) == stored
    second.send(frame({"type": "bye"}))
    assert second.read_until_closed() == []


class OneByOne:
    """A connection that waits for each batch's ack before the next: one transaction each."""

    def __init__(self, peer: Peer) -> None:
        self.peer, self.seq = peer, 0

    def send(self, *events: dict) -> None:
        self.seq += 1
        self.peer.send(frame(batch(*events, seq=self.seq)))
        assert ack_covering(self.peer, self.seq) == self.seq


def test_the_storage_rules_of_section_12(daemon, peers):
    peer = peers(daemon.socket)
    peer.handshake()
    send = OneByOne(peer).send
    step = ("SELECT step_name, model, input_data, metadata, status, error FROM steps "
            "WHERE step_id = ?")

    # A step end that carries no model or metadata keeps those of its start.
    send({**STEP_START, "model": "m1", "input_json": "[0]", "metadata_json": '{"a":1}'})
    send(STEP_END)
    assert one_row(daemon, step, (STEP_ID,)) == ("call_llm", "m1", "[0]", '{"a":1}', "ok", None)

    # A start arriving after its end fills what the end left NULL, and nothing else.
    other_run, late = "b" * 32, "1" * 16
    send({**STEP_END, "run_id": other_run, "step_id": late, "status": "error",
          "error_type": "ValueError"})
    send({**STEP_START, "run_id": other_run, "step_id": late, "name": "renamed", "model": "m2",
          "input_json": "[1]", "metadata_json": "{}"})
    assert one_row(daemon, step, (late,)) == ("call_llm", "m2", "[1]", "{}", "error", "ValueError")

    # That failed step was committed before its run existed: the run row starts as `error`,
    # and a successful run end does not clear it.
    run = {**RUN_START, "run_id": other_run}
    send(run)
    assert one_row(daemon, "SELECT status FROM runs WHERE run_id = ?", (other_run,)) == ("error",)
    send({**run, "type": "run_end", "end_ns": T0 + 1})
    assert one_row(daemon, "SELECT status, error FROM runs WHERE run_id = ?", (other_run,)) == (
        "error", None)

    # The stored error text: "Type: message", or whichever part exists, or "error".
    for n, (error_type, message, text) in enumerate([
        ("KeyError", "no such key", "KeyError: no such key"),
        ("KeyError", None, "KeyError"),
        (None, "no such key", "no such key"),
        (None, None, "error"),
    ]):
        step_id = f"{n + 2:016x}"
        send({**STEP_END, "step_id": step_id, "status": "error", "error_type": error_type,
              "error_message": message})
        assert one_row(daemon, "SELECT error FROM steps WHERE step_id = ?", (step_id,)) == (text,)


def test_a_step_id_taken_by_another_run_is_ignored_silently(daemon, peers):
    peer = peers(daemon.socket)
    peer.handshake()
    send = OneByOne(peer).send
    send(RUN_START, STEP_START)
    intruder = "c" * 32
    send({**RUN_START, "run_id": intruder})
    send({**STEP_END, "run_id": intruder, "output_json": "[9]", "status": "error"})  # acked
    assert one_row(daemon, "SELECT run_id, status, output_data FROM steps") == (
        RUN_ID, "running", None)
    # The ignored failed end is not stored under its run, so it fails nothing.
    assert sorted(daemon.query("SELECT run_id, status FROM runs")) == [
        (RUN_ID, "running"), (intruder, "running")]


def test_a_start_and_end_in_one_batch_keep_the_starts_model(daemon, peers):
    peer = peers(daemon.socket)
    peer.handshake()
    peer.send(frame(batch({**STEP_START, "model": "m1"}, STEP_END)))
    assert ack_covering(peer, 1) == 1
    assert one_row(daemon, "SELECT model, status FROM steps") == ("m1", "ok")



def test_an_invalid_batch_is_named_by_its_seq_and_only_it_is_lost(daemon, peers):
    peer = peers(daemon.socket)
    peer.handshake()
    refused = {**batch(STEP_START, BAD_STEP, seq=2), "dropped": {"queue_full": 5}}
    peer.send(frame(batch(RUN_START, seq=1)) + frame(refused) + frame(batch(STEP_END, seq=3)))
    *acks, error = peer.read_until_closed()
    # Batch 1 was queued before batch 2 was read: its ack comes before the error, so the
    # client knows that batch 2 is its oldest unacked batch.
    assert acks == [{"type": "ack", "seq": 1}]
    assert (error["type"], error["code"], error["seq"]) == ("error", "invalid_event", 2)
    assert (error["fatal"], error["retryable"]) == (True, False)
    assert error["message"].startswith("invalid message")
    # Nothing of batch 2 is stored, not even its valid event or its drop counts; batch 3
    # was never read.
    assert daemon.query("SELECT count(*) FROM runs") == [(1,)]
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]
    assert daemon.health()["client_drops"] == {}

    # What the client does next: drop batch 2, reconnect, resend the rest under new numbers.
    again = peers(daemon.socket)
    again.handshake()
    again.send(frame(batch(RUN_START, seq=1)) + frame(batch(STEP_END, seq=2)))
    assert ack_covering(again, 2) == 2
    assert one_row(daemon, "SELECT step_id, status FROM steps") == (STEP_ID, "ok")

    # A seq that does not increase is refused without a seq: that number names an earlier
    # batch, which the client must not drop.
    third = peers(daemon.socket)
    third.handshake()
    third.send(frame(batch(seq=5)) + frame(batch(seq=5)))
    *acks, error = third.read_until_closed()
    assert acks == [{"type": "ack", "seq": 5}]  # so the refused frame is the oldest unacked
    assert (error["code"], error["seq"]) == ("invalid_event", None)
    assert "not above the previous 5" in error["message"]


def test_a_batch_with_only_drop_counts_is_acked_and_shows_in_health(daemon, peers):
    peer = peers(daemon.socket)
    # A `dropped` key in the hello (an earlier draft's place for it) is ignored.
    peer.handshake(session="s-2", pid=77, host="box", dropped={"queue_full": 99})
    counts = {"queue_full": 3, "too_large": 1}
    peer.send(frame({"type": "batch", "seq": 1, "events": [], "dropped": counts}))
    assert ack_covering(peer, 1) == 1
    # The ack confirms the counts: they are committed before it is sent.
    assert daemon.health()["client_drops"] == counts
    assert sorted(daemon.query("SELECT session, pid, host, reason, count FROM client_drops")) == [
        ("s-2", 77, "box", "queue_full", 3), ("s-2", 77, "box", "too_large", 1)]
    # Nothing to report: an empty batch, or counts of zero, are acked and record nothing.
    peer.send(frame(batch(seq=2)) + frame({**batch(seq=3), "dropped": {"queue_full": 0}}))
    assert ack_covering(peer, 3) == 3
    assert daemon.health()["client_drops"] == counts
    assert daemon.query("SELECT count(*) FROM client_drops") == [(2,)]
    assert daemon.query("SELECT count(*) FROM runs") == [(0,)]
    peer.send(frame({"type": "bye"}))
    assert peer.read_until_closed() == []



@contextlib.contextmanager
def holding_the_write_lock(daemon):
    """Keep the daemon's writer waiting: its busy timeout is 5 s, so release well before."""
    conn = sqlite3.connect(daemon.db, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def refuses_connections(path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        probe.close()
    return False


def is_shutting_down(message: dict) -> bool:
    return (message["type"], message["code"], message["fatal"], message["retryable"],
            message["seq"]) == ("error", "shutting_down", True, True, None)


def stop_while_a_batch_waits_for_the_writer(daemon, peer: Peer, after=lambda: None) -> None:
    """Send batch 1 while the writer cannot commit, call ``daemon.stop()``, and call ``after``
    once the daemon has stopped listening (which it does just before it stops reading). Then
    let the writer go, and return when the daemon has exited."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with holding_the_write_lock(daemon):
            peer.send(frame(batch(RUN_START, seq=1)))
            wait_until(lambda: daemon.health()["events_received"] == 1, timeout=10,
                       message="the daemon to read batch 1")
            exit_code = pool.submit(daemon.stop)
            wait_until(lambda: refuses_connections(daemon.socket), timeout=10,
                       message="the daemon to stop listening")
            after()
        assert exit_code.result(timeout=30) == 0, daemon.log()


def test_a_graceful_stop_acks_what_it_received_then_sends_shutting_down(daemon, peers):
    idle = peers(daemon.socket)
    idle.handshake()
    busy = peers(daemon.socket)
    busy.handshake()
    stop_while_a_batch_waits_for_the_writer(daemon, busy)
    # Batch 1 was received but not committed when the stop began: the stop commits it and
    # acks it, and only then says it is shutting down.
    first, last = busy.read_until_closed()
    assert first == {"type": "ack", "seq": 1}
    assert is_shutting_down(last), last
    [last] = idle.read_until_closed()
    assert is_shutting_down(last), last
    assert one_row(daemon, "SELECT run_id FROM runs") == (RUN_ID,)


def test_a_client_still_writing_when_the_daemon_stops_gets_its_ack_and_shutting_down(
    daemon, peers,
):
    peer = peers(daemon.socket)
    peer.handshake()

    def write_more() -> None:
        peer.send(frame(batch(STEP_START, seq=2)))  # after the daemon stopped reading
        daemon.health()  # a round trip through the daemon's event loop, which saw those bytes

    stop_while_a_batch_waits_for_the_writer(daemon, peer, after=write_more)
    assert one_row(daemon, "SELECT run_id FROM runs") == (RUN_ID,)  # committed either way
    frames = peer.read_until_closed()
    assert frames[:1] == [{"type": "ack", "seq": 1}], frames
    assert is_shutting_down(frames[-1]), frames



# ---- what the API serves for what a client sent ----

TOOL_ID, LLM_ID, FREE_ID = "00f067aa0ba90301", "00f067aa0ba90302", "00f067aa0ba90303"


def test_only_a_step_that_used_tokens_without_a_cost_is_unpriced(daemon, peers):
    from api_support import get

    peer = peers(daemon.socket)
    peer.handshake()
    tool = {**STEP_END, "step_id": TOOL_ID, "name": "tool"}  # cost_usd left out: nil
    llm = {**STEP_END, "step_id": LLM_ID, "name": "llm", "tokens_input": 10, "cost_usd": None}
    free = {**STEP_END, "step_id": FREE_ID, "name": "free", "tokens_output": 3, "cost_usd": 0.0}
    peer.send(frame(batch(RUN_START, tool, llm, free, seq=1)))
    assert ack_covering(peer, 1) == 1
    run = get(daemon.http_url, f"/api/runs/{RUN_ID}")
    assert run["run"]["unpriced_steps"] == 1 and run["run"]["cost_usd"] == 0.0
    costs = {step["step_name"]: step["cost_usd"] for step in run["steps"]}
    assert costs == {"tool": 0.0, "llm": None, "free": 0.0}
    assert get(daemon.http_url, f"/api/steps/{TOOL_ID}")["cost_usd"] == 0.0
    assert get(daemon.http_url, f"/api/steps/{LLM_ID}")["cost_usd"] is None
    stats = {s["step_name"]: s for s in get(daemon.http_url, "/api/stats")["steps"]}
    assert {name: s["unpriced_steps"] for name, s in stats.items()} == {
        "tool": 0, "llm": 1, "free": 0}
    assert stats["tool"]["cost_usd"] == 0.0 and stats["llm"]["cost_usd"] is None
    assert one_row(daemon, "SELECT cost_usd FROM steps WHERE step_id = ?", (TOOL_ID,)) == (None,)


def test_a_payload_that_is_not_json_is_served_marked_and_a_json_string_is_served_plain(
        daemon, peers):
    from api_support import get

    peer = peers(daemon.socket)
    peer.handshake()
    start = {**STEP_START, "input_json": "not json {", "metadata_json": '"not json {"'}
    end = {**STEP_END, "output_json": "[1, 2"}
    peer.send(frame(batch(start, seq=1)) + frame(batch(end, seq=2)))
    assert ack_covering(peer, 2) == 2
    step = get(daemon.http_url, f"/api/steps/{STEP_ID}")
    assert step["input_data"] == {"_traceforge_invalid_json": True, "text": "not json {"}
    assert step["output_data"] == {"_traceforge_invalid_json": True, "text": "[1, 2"}
    assert step["metadata"] == "not json {"  # valid JSON: a string
    assert one_row(daemon, "SELECT input_data FROM steps") == ("not json {",)  # as sent
