"""What the daemon refuses, on a raw socket: every documented error, timeouts, the TCP
token rule and the announced frame limit."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import DaemonProcess
from protocol_support import (
    BAD_STEP,
    HELLO,
    PREFACE,
    RUN_ID,
    RUN_START,
    STEP_END,
    ack_covering,
    batch,
    frame,
    one_row,
    packed,
)

from test_protocol_vectors import REJECT as REJECT_VECTORS
from traceforge_protocol import wire as protocol

TOKEN = "a-test-token-of-32-characters-xx"
"""Long enough for a listener beyond loopback (settings.MIN_TOKEN_CHARS)."""


def oversized() -> bytes:
    return struct.pack(">I", protocol.MAX_FRAME_BYTES + 1)  # and no body at all


def with_invalid_utf8(message: dict) -> bytes:
    """``message`` as a frame, its one "?" string replaced by two bytes that are not UTF-8."""
    body = packed(message)
    assert body.count(b"\xa1?") == 1
    body = body.replace(b"\xa1?", b"\xa2\xff\xfe")
    return struct.pack(">I", len(body)) + body


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


REJECTIONS = {
    # name: (bytes the client sends, frames before the error, error code, words in the message,
    #        the error's seq). The words are the daemon's own: where the detail comes from the
    #        msgpack library (a validation path, a decode error), only the daemon's prefix is
    #        checked, so a new msgspec release that words its errors differently changes nothing.
    "wrong preface": (b"TFR\x02" + frame(HELLO), 0, "bad_preface", "expected the preface", None),
    "http request": (
        b"POST /v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
        0, "bad_preface", "not HTTP", None,
    ),
    "unsupported version": (PREFACE + frame({**HELLO, "versions": [2, 3]}), 0,
                            "unsupported_version", "[2, 3]", None),
    "wrong proto": (PREFACE + frame({**HELLO, "proto": "otlp"}), 0,
                    "unsupported_version", "'otlp'", None),
    "invalid hello": (PREFACE + frame({**HELLO, "pid": "4242"}), 0,
                      "invalid_event", "invalid message", None),
    "oversized length before the hello": (PREFACE + oversized(), 0, "frame_too_large", "4194305",
                                          None),
    "oversized length after the hello": (PREFACE + frame(HELLO) + oversized(), 1,
                                         "frame_too_large", "4194305", None),
    "zero length": (PREFACE + struct.pack(">I", 0), 0, "malformed", "frame length 0", None),
    "trailing bytes": (PREFACE + frame(HELLO) + struct.pack(">I", len(packed(batch())) + 1)
                       + packed(batch()) + b"\xc0", 1, "malformed", "not a msgpack message", None),
    "invalid utf-8 in the hello": (PREFACE + with_invalid_utf8({**HELLO, "host": "?"}), 0,
                                   "malformed", "not a msgpack message", None),
    "invalid utf-8 in a batch": (PREFACE + frame(HELLO)
                                 + with_invalid_utf8(batch({**RUN_START, "name": "?"}, seq=4)),
                                 1, "malformed", "not a msgpack message", 4),
    "batch before the hello": (PREFACE + frame(batch(RUN_START)), 0, "hello_required", "hello",
                               None),
    "second hello": (PREFACE + frame(HELLO) + frame(HELLO), 1, "hello_required", "second hello",
                     None),
    "invalid event": (PREFACE + frame(HELLO) + frame(batch(BAD_STEP, seq=1)), 1,
                      "invalid_event", "invalid message", 1),
    "seq zero": (PREFACE + frame(HELLO) + frame(batch(seq=0)), 1, "invalid_event",
                 "invalid message", 0),
    "invalid batch before the hello": (PREFACE + frame(batch(BAD_STEP, seq=3)), 0,
                                       "invalid_event", "invalid message", 3),
    "a count beyond 64 bits": (PREFACE + frame(HELLO) + frame(batch(
        {**STEP_END, "tokens_input": 2**63}, seq=6)), 1, "invalid_event", "invalid message", 6),
    "a pid beyond 64 bits": (PREFACE + frame({**HELLO, "pid": 2**63}), 0, "invalid_event",
                             "invalid message", None),
    "an infinite cost": (PREFACE + frame(HELLO) + frame(batch(
        {**STEP_END, "cost_usd": float("inf")}, seq=7)), 1, "invalid_event", "invalid message", 7),
    "the same type twice": (PREFACE + frame(HELLO) + raw_frame(
        b"\x84\xa4type\xa5batch\xa4type\xa5batch\xa3seq\x08\xa6events\x90"),
        1, "invalid_event", "repeated key 'type' - at `$`", 8),
    "a type only the daemon sends": (PREFACE + frame(HELLO) + frame({"type": "ack", "seq": 1}),
                                     1, "invalid_event", "invalid message", None),
}


@pytest.fixture(scope="module")
def rejecting_daemon():
    """One daemon for all the rejection cases: none of them stores anything."""
    tmp = Path(tempfile.mkdtemp(prefix="tf", dir="/tmp"))
    daemon = DaemonProcess(tmp / "home")
    daemon.home.mkdir()
    try:
        yield daemon.start()
        assert daemon.stop() == 0, daemon.log()
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_a_rejected_connection_gets_one_documented_error_then_is_closed(
    rejecting_daemon, peers, case,
):
    daemon = rejecting_daemon
    data, before, code, words, seq = REJECTIONS[case]
    rejected = daemon.health()["rejected_connections"]
    peer = peers(daemon.socket)
    peer.send(data)
    # The body of an oversized frame is never sent: had the daemon tried to read it, it would
    # wait 30 s (body_timeout) and this read would time out first.
    frames = peer.read_until_closed()
    assert [f["type"] for f in frames] == ["hello_ok"] * before + ["error"]
    error = frames[-1]
    assert error["code"] == code and words in error["message"], error
    assert (error["fatal"], error["retryable"], error["seq"]) == (True, False, seq)
    assert error["versions"] == ([1] if code == "unsupported_version" else None)
    assert daemon.health()["rejected_connections"] == rejected + 1
    assert daemon.query("SELECT count(*) FROM runs") == [(0,)]
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]



def test_silence_gets_hello_timeout_and_then_idle_timeout(daemon_factory, peers):
    daemon = daemon_factory(("--hello-timeout", "0.3", "--idle-timeout", "0.5")).start()
    hello = packed(HELLO)
    # One deadline covers the preface and the whole hello, its body included.
    handshakes = [b"", PREFACE, PREFACE + struct.pack(">I", len(hello)) + hello[:5]]
    silent = [peers(daemon.socket) for _ in handshakes]
    for peer, data in zip(silent, handshakes):
        peer.send(data)
    idle = peers(daemon.socket)
    idle.handshake()
    for peer in silent:
        [error] = peer.read_until_closed()
        assert (error["type"], error["code"]) == ("error", "hello_timeout")
        assert "no preface and hello within 0.3 s" in error["message"]
    [error] = idle.read_until_closed()
    assert (error["type"], error["code"], error["retryable"]) == ("error", "idle_timeout", False)


def test_a_frame_body_slower_than_body_timeout_gets_frame_timeout(daemon_factory, peers):
    daemon = daemon_factory(("--body-timeout", "0.5")).start()
    body = packed(batch(RUN_START))
    after_hello = peers(daemon.socket)
    after_hello.handshake()
    after_hello.send(struct.pack(">I", len(body)) + body[:10])
    hello = packed(HELLO)
    in_the_hello = peers(daemon.socket)  # hello_timeout is 5 s: body_timeout ends first
    in_the_hello.send(PREFACE + struct.pack(">I", len(hello)) + hello[:5])
    for peer, length in ((after_hello, len(body)), (in_the_hello, len(hello))):
        [error] = peer.read_until_closed()
        assert (error["type"], error["code"], error["fatal"], error["retryable"]) == (
            "error", "frame_timeout", True, False)
        assert f"a {length}-byte frame body did not arrive within 0.5 s" in error["message"]
    assert daemon.query("SELECT count(*) FROM runs") == [(0,)]


def tcp_port(daemon) -> int:
    state = json.loads((daemon.home / "daemon.json").read_text())
    return int(state["tcp"].rsplit(":", 1)[1])


def test_tcp_carries_the_same_bytes_without_a_token_on_loopback(daemon_factory, peers):
    # The daemon has a token (its HTTP listener is exposed), but the TCP listener is on
    # loopback, so TCP clients need none; the HTTP API, beyond loopback, does.
    daemon = daemon_factory(("--tcp", "127.0.0.1:0", "--http", "0.0.0.0:0",
                             "--token", TOKEN)).start()
    peer = peers(("127.0.0.1", tcp_port(daemon)))
    assert peer.handshake()["version"] == 1
    peer.send(frame(batch(RUN_START, seq=1)) + frame({"type": "bye"}))
    assert peer.read_until_closed() == [{"type": "ack", "seq": 1}]
    assert one_row(daemon, "SELECT run_id FROM runs") == (RUN_ID,)
    health = f"http://127.0.0.1:{daemon.http_url.rsplit(':', 1)[1]}/api/health"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(health, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(health, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["events_committed"] == 1


def test_a_tcp_listener_beyond_loopback_asks_every_client_for_the_token(daemon_factory, peers):
    daemon = daemon_factory(("--tcp", "0.0.0.0:0", "--token", TOKEN)).start()
    address = ("127.0.0.1", tcp_port(daemon))  # a loopback peer still needs it
    for token in (None, "wrong"):
        peer = peers(address)
        peer.send(PREFACE + frame({**HELLO, "token": token}))
        [error] = peer.read_until_closed()
        assert (error["code"], error["retryable"]) == ("auth_failed", False), error
    assert peers(address).handshake(token=TOKEN)["version"] == 1
    assert peers(daemon.socket).handshake(token="ignored here")["version"] == 1


def test_hello_ok_announces_the_frame_limit_the_daemon_enforces(daemon_factory, peers):
    daemon = daemon_factory(("--max-frame-bytes", "65536")).start()
    peer = peers(daemon.socket)
    assert peer.handshake()["max_frame_bytes"] == 65536

    def padded(size: int, seq: int) -> bytes:
        message = {**batch(RUN_START, seq=seq), "x-pad": ""}
        message["x-pad"] = "p" * (size - len(packed(message)) - 2)  # a str 16 header: 3 bytes
        body = packed(message)
        assert len(body) == size
        return struct.pack(">I", size) + body

    peer.send(padded(65536, seq=1))
    assert ack_covering(peer, 1) == 1
    peer.send(padded(65537, seq=2))
    [error] = peer.read_until_closed()
    assert (error["code"], error["seq"]) == ("frame_too_large", None)
    assert "65537" in error["message"] and "65536" in error["message"]



@pytest.mark.parametrize("vector", REJECT_VECTORS, ids=str)
def test_the_reject_vectors_of_protocol_md_are_refused_after_a_hello(rejecting_daemon, peers,
                                                                     vector):
    peer = peers(rejecting_daemon.socket)
    peer.handshake()
    peer.send(vector.frame)
    [error] = peer.read_until_closed()
    assert {"code": error["code"], "seq": error["seq"]} == vector.message
    assert rejecting_daemon.query("SELECT count(*) FROM steps") == [(0,)]
