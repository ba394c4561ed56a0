"""Bad input on the ingest socket costs that one connection and nothing else.

Each case gets one error frame with its code, then the connection is closed; the
daemon logs one line and carries on, and what is stored does not change. A
property-based fuzzer then throws malformed frames while a good client sends.
"""

from __future__ import annotations

import socket

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wait_until
from sender_support import SteadySenders
from traceforge_protocol import wire as protocol

HELLO = protocol.encode_frame(protocol.Hello(versions=[1], pid=1, host="fuzz"))
HELLO_TIMEOUT = 0.5


def frame(body: bytes) -> bytes:
    return protocol.FRAME_HEADER.pack(len(body)) + body


def talk(path, data: bytes, close_write: bool = True, timeout: float = 5.0):
    """Send ``data``, then read until the daemon closes; return its messages and whether it
    closed the connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    received = b""
    closed = False
    try:
        if data:
            sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        sock.close()
    messages = []
    while len(received) >= 4:
        (length,) = protocol.FRAME_HEADER.unpack_from(received)
        messages.append(protocol.server_message_decoder.decode(received[4 : 4 + length]))
        received = received[4 + length :]
    assert received == b"", "the daemon sent a partial frame"
    return messages, closed


def errors(messages):
    return [m for m in messages if isinstance(m, protocol.Error)]


def packed(obj) -> bytes:
    return msgspec.msgpack.encode(obj)


GOOD_STEP = {
    "type": "step_start", "run_id": "0" * 31 + "1", "step_id": "0" * 15 + "1",
    "name": "x", "start_ns": 1,
}

BAD_INPUTS = {
    "garbage bytes": (b"\x00\xffgarbage!", "bad_preface", "expected the preface"),
    "http request": (b"GET /api/runs HTTP/1.1\r\nHost: x\r\n\r\n", "bad_preface", "not HTTP"),
    "oversized frame": (protocol.PREFACE + b"\xff\xff\xff\xff", "frame_too_large", "outside"),
    "zero-length frame": (protocol.PREFACE + b"\x00\x00\x00\x00", "malformed", "outside"),
    "not msgpack": (protocol.PREFACE + frame(b"\xc1"), "malformed", "not a msgpack"),
    "first frame not hello": (
        protocol.PREFACE + frame(packed({"type": "batch", "seq": 1, "events": []})),
        "hello_required", "must be a hello",
    ),
    "unsupported version": (
        protocol.PREFACE + frame(packed({"type": "hello", "versions": [99]})),
        "unsupported_version", "versions [99]",
    ),
    "wrong field type": (
        protocol.PREFACE + HELLO + frame(packed({
            "type": "batch", "seq": 1, "events": [{**GOOD_STEP, "start_ns": "yesterday"}],
        })),
        "invalid_event", "invalid message",
    ),
    "bad step id": (
        protocol.PREFACE + HELLO + frame(packed({
            "type": "batch", "seq": 1, "events": [{**GOOD_STEP, "step_id": "not-hex"}],
        })),
        "invalid_event", "invalid message",
    ),
    "a count beyond 64 bits": (
        protocol.PREFACE + HELLO + frame(packed({
            "type": "batch", "seq": 1, "events": [{**GOOD_STEP, "start_ns": 2**63}],
        })),
        "invalid_event", "invalid message",
    ),
    "unknown message type": (
        protocol.PREFACE + HELLO + frame(packed({"type": "teleport"})),
        "invalid_event", "invalid message",
    ),
    "seq going backwards": (
        protocol.PREFACE + HELLO
        + frame(packed({"type": "batch", "seq": 5, "events": []}))
        + frame(packed({"type": "batch", "seq": 5, "events": []})),
        "invalid_event", "seq 5",
    ),
}


@pytest.fixture
def strict_daemon(daemon_factory):
    running = daemon_factory(("--hello-timeout", str(HELLO_TIMEOUT))).start()
    yield running
    assert running.stop() == 0, running.log()


def _store_good_run(daemon) -> list:
    daemon.run_python(
        "import traceforge_client as tf\n"
        "with tf.trace_run('good'):\n"
        "    with tf.trace_step('kept', input_data={'a': 1}):\n"
        "        pass\n"
        "assert tf.flush(10)\n"
    )
    return daemon.query("SELECT * FROM steps ORDER BY step_id")


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_an_error_then_close_and_changes_nothing(strict_daemon, case):
    daemon = strict_daemon
    before = _store_good_run(daemon)
    data, code, hint = BAD_INPUTS[case]
    messages, closed = talk(daemon.socket, data)
    assert closed
    [error] = errors(messages)
    assert error.code == code and error.fatal
    assert hint in error.message, error.message
    assert daemon.query("SELECT * FROM steps ORDER BY step_id") == before
    assert daemon.health()["status"] == "ok"
    logged = [line for line in daemon.log().splitlines() if "closed connection" in line]
    assert len(logged) == 1 and code in logged[0]


def test_a_silent_connection_is_told_and_closed(strict_daemon):
    messages, closed = talk(strict_daemon.socket, b"", close_write=False)
    assert closed
    [error] = errors(messages)
    assert error.code == "hello_timeout"
    assert strict_daemon.health()["rejected_connections"] == 1


def test_a_valid_session_after_bad_ones_is_acked(strict_daemon):
    for data, _, _ in BAD_INPUTS.values():
        talk(strict_daemon.socket, data)
    batch = packed({"type": "batch", "seq": 1, "events": [GOOD_STEP]})
    bye = packed({"type": "bye"})
    messages, closed = talk(strict_daemon.socket, protocol.PREFACE + HELLO + frame(batch) + frame(bye))
    assert [type(m).__name__ for m in messages] == ["HelloOk", "Ack"]
    assert messages[1].seq == 1 and closed
    assert strict_daemon.query("SELECT step_name, status FROM steps") == [("x", "running")]


# ---- property-based fuzzing while a well-behaved client sends ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["step_start", "step_end", "run_start", "run_end", "other"])},
    optional={
        "run_id": st.text(alphabet="0123456789abcdefg", min_size=30, max_size=33),
        "step_id": st.text(alphabet="0123456789abcdef", min_size=15, max_size=17),
        "name": json_values, "start_ns": json_values, "end_ns": json_values,
        "status": json_values, "tokens_input": json_values, "cost_usd": json_values,
    },
)
batch_like = st.fixed_dictionaries(
    {"type": st.just("batch")},
    optional={"seq": json_values, "events": st.lists(event_like | json_values, max_size=4)},
)
after_hello = st.one_of(
    st.binary(max_size=64).map(frame),
    json_values.map(lambda v: frame(packed(v))),
    batch_like.map(lambda v: frame(packed(v))),
    st.integers(0, 2**32 - 1).map(protocol.FRAME_HEADER.pack),  # a length with no body
)
malformed_sessions = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: protocol.PREFACE + b),
    st.lists(after_hello, min_size=1, max_size=3).map(lambda fs: protocol.PREFACE + HELLO + b"".join(fs)),
)


def test_fuzzed_frames_never_hurt_the_daemon_or_a_good_client(strict_daemon, short_tmp):
    daemon = strict_daemon
    steps = 2000
    good = SteadySenders(daemon, 1, steps, short_tmp)

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed_sessions)
    def throw(data):
        messages, closed = talk(daemon.socket, data)
        assert closed
        for error in errors(messages):
            assert error.fatal and error.code and error.message

    with good:
        throw()
        [final] = good.finish(timeout=120)
    assert final["delivered"] is True and final["dropped"] == {}
    [(count, distinct)] = daemon.query(
        "SELECT count(*), count(DISTINCT step_id) FROM steps s JOIN runs r USING (run_id) "
        "WHERE r.run_name = 'sender-0' AND s.status = 'ok'"
    )
    assert count == distinct == steps
    assert wait_until(lambda: daemon.health()["connections"] == 0, timeout=10)
    assert daemon.health()["status"] == "ok"
