"""The wire protocol: framing helpers and decoders, then a real daemon spoken to by hand.

The daemon tests use only what protocol.md says: the preface bytes, a big-endian length, and
plain msgpack maps built as dicts. No TraceForge code runs on the client side, so they check
the document as much as the daemon.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Optional

import msgspec
import pytest

from traceforge_client import protocol

RUN_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STEP_ID = "00f067aa0ba902b7"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds

HELLO = {"type": "hello", "versions": [1]}
RUN_START = {"type": "run_start", "run_id": RUN_ID, "name": "summarize", "start_ns": T0}
STEP_START = {
    "type": "step_start", "run_id": RUN_ID, "step_id": STEP_ID, "name": "call_llm",
    "start_ns": T0 + 1_000_000,
}
STEP_END = {**STEP_START, "type": "step_end", "end_ns": T0 + 251_000_000}


def packed(message: object) -> bytes:
    return msgspec.msgpack.encode(message)


def client_decode(message: object) -> msgspec.Struct:
    return protocol.client_message_decoder.decode(packed(message))


def without(message: dict, key: str) -> dict:
    return {k: v for k, v in message.items() if k != key}


def batch(*events: dict, seq: int = 1) -> dict:
    return {"type": "batch", "seq": seq, "events": list(events)}


# ---- framing helpers ----


class TestFraming:
    def test_the_preface_is_tfr_then_framing_generation_one(self):
        assert protocol.PREFACE == b"TFR\x01" == bytes.fromhex("54465201")

    def test_the_frame_header_is_an_unsigned_32_bit_big_endian_length(self):
        assert protocol.FRAME_HEADER.size == 4
        assert protocol.FRAME_HEADER.pack(0x01020304) == b"\x01\x02\x03\x04"
        assert protocol.FRAME_HEADER.pack(2**32 - 1) == b"\xff\xff\xff\xff"

    @pytest.mark.parametrize("events", [0, 1000])
    def test_encode_frame_is_the_body_length_then_the_body(self, events):
        message = protocol.Batch(
            seq=3,
            events=[protocol.StepStart(run_id=RUN_ID, step_id=f"{i:016x}", name="s", start_ns=i)
                    for i in range(events)],
        )
        frame = protocol.encode_frame(message)
        body = msgspec.msgpack.encode(message)
        assert frame == struct.pack(">I", len(body)) + body
        assert protocol.client_message_decoder.decode(frame[4:]) == message

    def test_the_reference_encoder_writes_every_field_including_defaults_and_nils(self):
        body = protocol.encode_frame(protocol.Hello(versions=[1]))[4:]
        assert list(msgspec.msgpack.decode(body)) == [
            "type", "versions", "proto", "token", "client", "client_version", "lang", "pid",
            "host", "session", "dropped",
        ]


# ---- decoders ----


class TestDecoders:
    def test_unknown_keys_of_any_type_are_ignored_at_every_level(self):
        noise = {"x-bin": b"\x00\xff", "x-ext": msgspec.msgpack.Ext(1, b"z"),
                 "x-map": {"a": [1, None, 2.5]}, "x-nil": None}
        assert client_decode({**HELLO, **noise}) == client_decode(HELLO)
        noisy_batch = {**batch({**STEP_START, **noise}), **noise}
        assert client_decode(noisy_batch) == client_decode(batch(STEP_START))

    def test_keys_may_come_in_any_order_and_optional_keys_may_be_missing(self):
        reordered = dict(reversed(list(STEP_START.items())))
        decoded = client_decode({"events": [reordered], "seq": 1, "type": "batch"})
        assert decoded == protocol.Batch(seq=1, events=[protocol.StepStart(
            run_id=RUN_ID, step_id=STEP_ID, name="call_llm", start_ns=T0 + 1_000_000,
            parent_step_id=None, model=None, input_json=None, metadata_json=None,
        )])
        assert client_decode({"versions": [1], "type": "hello"}).proto == "traceforge"

    def test_any_valid_msgpack_width_is_accepted(self):
        # {"type": "ack", "seq": 5} with the 5 as a uint64 and "ack" as a str8
        body = b"\x82\xa4type\xd9\x03ack\xa3seq\xcf" + (5).to_bytes(8, "big")
        assert protocol.server_message_decoder.decode(body) == protocol.Ack(seq=5)

    @pytest.mark.parametrize("message, named", [
        ({"type": "hello"}, "`versions`"),
        ({"type": "batch", "events": []}, "`seq`"),
        ({"type": "batch", "seq": 1}, "`events`"),
        (batch(without(STEP_START, "step_id")), "`step_id` - at `$.events[0]`"),
        (batch(without(STEP_END, "end_ns")), "`end_ns` - at `$.events[0]`"),
        ({"seq": 1, "events": []}, "`type`"),
    ])
    def test_a_missing_required_field_is_rejected_with_its_name(self, message, named):
        with pytest.raises(msgspec.ValidationError, match="missing required field") as caught:
            client_decode(message)
        assert named in str(caught.value)

    @pytest.mark.parametrize("message, where", [
        ({"type": "hello", "versions": "1"}, "$.versions"),
        ({"type": "hello", "versions": [1], "pid": True}, "$.pid"),
        ({"type": "hello", "versions": [1], "token": 123}, "$.token"),
        (batch({**STEP_START, "start_ns": 1.0}), "$.events[0].start_ns"),
        (batch({**STEP_START, "name": b"call_llm"}), "$.events[0].name"),
        (batch({**STEP_END, "tokens_input": None}), "$.events[0].tokens_input"),
        (batch({**STEP_END, "cost_usd": "0.25"}), "$.events[0].cost_usd"),
        (batch({**RUN_START, "metadata_json": None}), "$.events[0].metadata_json"),
        (batch(STEP_START, seq="1"), "$.seq"),
    ])
    def test_a_wrong_type_is_rejected_with_its_path(self, message, where):
        with pytest.raises(msgspec.ValidationError, match=r"Expected `[\w |]+`, got") as caught:
            client_decode(message)
        assert f"`{where}`" in str(caught.value)

    def test_a_batch_of_more_than_max_batch_events_is_rejected(self):
        assert len(client_decode(batch(*[STEP_START] * protocol.MAX_BATCH_EVENTS)).events) == 1000
        with pytest.raises(msgspec.ValidationError, match=r"length <= 1000 - at `\$.events`"):
            client_decode(batch(*[STEP_START] * (protocol.MAX_BATCH_EVENTS + 1)))

    @pytest.mark.parametrize("field, value", [
        ("run_id", RUN_ID.upper()),
        ("run_id", RUN_ID[:-1]),
        ("step_id", STEP_ID + "0"),
        ("parent_step_id", "not-a-step-id!!!"),
        ("name", ""),
        ("name", "é" * (protocol.MAX_NAME_CHARS + 1)),
        ("start_ns", -1),
    ])
    def test_ids_names_and_times_must_have_their_documented_form(self, field, value):
        with pytest.raises(msgspec.ValidationError, match=rf"at `\$.events\[0\].{field}`"):
            client_decode(batch({**STEP_START, field: value}))

    def test_names_are_counted_in_characters_not_bytes(self):
        name = "é" * protocol.MAX_NAME_CHARS  # 1024 bytes of UTF-8
        assert client_decode(batch({**STEP_START, "name": name})).events[0].name == name

    @pytest.mark.parametrize("message", [
        {"type": "batch", "seq": 0, "events": []},
        batch({**STEP_END, "status": "success"}),
        batch({**RUN_START, "type": "run_end", "end_ns": T0, "status": "ok"}),
        batch({**STEP_END, "cost_usd": float("nan")}),
        batch({**STEP_END, "tokens_output": -1}),
    ])
    def test_values_outside_their_rules_are_rejected(self, message):
        with pytest.raises(msgspec.ValidationError):
            client_decode(message)

    @pytest.mark.parametrize("message", [
        {"type": "ack", "seq": 1},
        {"type": "hello_ok", "version": 1},
        {"type": "error", "code": "malformed", "message": "x"},
        STEP_START,
        {"type": "ping"},
    ])
    def test_the_client_decoder_takes_only_hello_batch_and_bye(self, message):
        with pytest.raises(msgspec.ValidationError, match=r"Invalid value '\w+' - at `\$.type`"):
            client_decode(message)

    @pytest.mark.parametrize("message", [HELLO, batch(), {"type": "bye"}])
    def test_the_server_decoder_takes_only_hello_ok_ack_and_error(self, message):
        with pytest.raises(msgspec.ValidationError):
            protocol.server_message_decoder.decode(packed(message))

    @pytest.mark.parametrize("body", [
        packed(HELLO)[:-1],           # truncated
        packed(HELLO) + b"\xc0",      # a second value after the map
        b"\xc1",                      # never a valid msgpack byte
    ])
    def test_bytes_that_are_not_one_msgpack_value_are_a_decode_error(self, body):
        # The daemon answers these with `malformed`, and validation errors with `invalid_event`.
        with pytest.raises(msgspec.DecodeError) as caught:
            protocol.client_message_decoder.decode(body)
        assert not isinstance(caught.value, msgspec.ValidationError)

    @pytest.mark.parametrize("body", [packed([1, 2]), packed("hello"), packed(None)])
    def test_a_body_that_is_not_a_map_is_a_validation_error(self, body):
        with pytest.raises(msgspec.ValidationError, match="Expected `object`"):
            protocol.client_message_decoder.decode(body)


# ---- a real daemon, spoken to by hand ----

PREFACE = bytes.fromhex("54 46 52 01")


def frame(message: object) -> bytes:
    body = packed(message)
    return struct.pack(">I", len(body)) + body


class Peer:
    """A raw socket to the daemon. Every read waits at most ``timeout`` seconds."""

    def __init__(self, address, timeout: float = 10.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def handshake(self, **hello) -> dict:
        self.send(PREFACE + frame({**HELLO, **hello}))
        reply = self.read()
        assert reply is not None and reply["type"] == "hello_ok", reply
        return reply

    def _fill(self) -> bool:
        """Read more bytes; False once the daemon has closed (EOF or reset)."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += chunk
        return bool(chunk)

    def read(self) -> Optional[dict]:
        """The next frame as a plain dict, or None if the connection closed first."""
        while len(self.buffer) < 4:
            if not self._fill():
                assert self.buffer == b"", f"connection closed inside a frame: {self.buffer!r}"
                return None
        (length,) = struct.unpack(">I", self.buffer[:4])
        while len(self.buffer) < 4 + length:
            assert self._fill(), "connection closed inside a frame"
        body, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
        return msgspec.msgpack.decode(body)

    def read_until_closed(self) -> list[dict]:
        frames = []
        while (message := self.read()) is not None:
            frames.append(message)
        return frames

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers():
    opened: list[Peer] = []

    def connect(address, **options) -> Peer:
        peer = Peer(str(address) if not isinstance(address, tuple) else address, **options)
        opened.append(peer)
        return peer

    yield connect
    for peer in opened:
        peer.close()


def ack_covering(peer: Peer, seq: int) -> int:
    """Read acks until one covers ``seq``. Acks are cumulative, so the daemon may skip some."""
    last = 0
    while last < seq:
        message = peer.read()
        assert message is not None and message["type"] == "ack", message
        assert message["seq"] > last, f"ack went from {last} to {message['seq']}"
        last = message["seq"]
    return last


def one_row(daemon, sql: str, params: tuple = ()) -> tuple:
    rows = daemon.query(sql, params)
    assert len(rows) == 1, rows
    return rows[0]


def test_a_hand_written_session_is_committed_before_each_ack(daemon, peers):
    peer = peers(daemon.socket)
    ok = peer.handshake(client="by-hand", lang="none", pid=4242, host="devbox",
                        session="s-1", dropped={"queue_full": 3})
    assert ok == {"type": "hello_ok", "version": 1, "server": "traceforge-daemon",
                  "server_version": ok["server_version"], "max_frame_bytes": 4_194_304,
                  "max_batch_events": 1000, "ack": "commit"}

    step_start = {**STEP_START, "input_json": '{"prompt":"Hi"}'}
    peer.send(frame(batch(RUN_START, seq=1)) + frame(batch(step_start, seq=2)))
    acked = ack_covering(peer, 1)
    # An ack means committed: the rows are readable the moment it arrives, no waiting.
    assert one_row(daemon, "SELECT run_name, status, pid, host FROM runs") == (
        "summarize", "running", 4242, "devbox")
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
    assert one_row(daemon, "SELECT session, pid, host, reason, count FROM client_drops") == (
        "s-1", 4242, "devbox", "queue_full", 3)

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


def oversized() -> bytes:
    return struct.pack(">I", protocol.MAX_FRAME_BYTES + 1)  # and no body at all


REJECTIONS = {
    # name: (bytes the client sends, frames before the error, error code, words in the message)
    "wrong preface": (b"TFR\x02" + frame(HELLO), 0, "bad_preface", "expected the preface"),
    "http request": (
        b"POST /v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
        0, "bad_preface", "not HTTP",
    ),
    "unsupported version": (PREFACE + frame({**HELLO, "versions": [2, 3]}), 0,
                            "unsupported_version", "[2, 3]"),
    "oversized length before the hello": (PREFACE + oversized(), 0, "frame_too_large", "4194305"),
    "oversized length after the hello": (PREFACE + frame(HELLO) + oversized(), 1,
                                         "frame_too_large", "4194305"),
    "zero length": (PREFACE + struct.pack(">I", 0), 0, "malformed", "frame length 0"),
    "batch before the hello": (PREFACE + frame(batch(RUN_START)), 0, "hello_required", "hello"),
    "invalid event": (PREFACE + frame(HELLO) + frame(batch({**STEP_START, "step_id": "x"})), 1,
                      "invalid_event", "$.events[0].step_id"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_a_rejected_connection_gets_one_documented_error_then_is_closed(daemon, peers, case):
    data, before, code, words = REJECTIONS[case]
    peer = peers(daemon.socket)
    peer.send(data)
    # The body of an oversized frame is never sent: had the daemon tried to read it, it would
    # wait 30 s (body_timeout) and this read would time out first.
    frames = peer.read_until_closed()
    assert [f["type"] for f in frames] == ["hello_ok"] * before + ["error"]
    error = frames[-1]
    assert error["code"] == code and words in error["message"], error
    assert (error["fatal"], error["retryable"], error["seq"]) == (True, False, None)
    assert error["versions"] == ([1] if code == "unsupported_version" else None)
    assert daemon.health()["rejected_connections"] == 1
    assert daemon.query("SELECT count(*) FROM steps") == [(0,)]


def test_silence_gets_hello_timeout_and_then_idle_timeout(daemon_factory, peers):
    daemon = daemon_factory(("--hello-timeout", "0.3", "--idle-timeout", "0.5")).start()
    for data in (b"", PREFACE):
        peer = peers(daemon.socket)
        peer.send(data)
        [error] = peer.read_until_closed()
        assert (error["type"], error["code"]) == ("error", "hello_timeout")
    peer = peers(daemon.socket)
    peer.handshake()
    [error] = peer.read_until_closed()
    assert (error["type"], error["code"]) == ("error", "idle_timeout")


def test_tcp_carries_the_same_bytes_without_a_token_on_loopback(daemon_factory, peers):
    daemon = daemon_factory(("--tcp", "127.0.0.1:0")).start()
    state = json.loads((daemon.home / "daemon.json").read_text())
    host, port = state["tcp"].removeprefix("tcp://").rsplit(":", 1)
    peer = peers((host, int(port)))
    assert peer.handshake()["version"] == 1
    peer.send(frame(batch(RUN_START, seq=1)) + frame({"type": "bye"}))
    assert peer.read_until_closed() == [{"type": "ack", "seq": 1}]
    assert one_row(daemon, "SELECT run_id FROM runs") == (RUN_ID,)


@pytest.mark.xfail(strict=True, reason="protocol.md appendix item 1: ingest.py catches only "
                   "msgspec errors, and invalid UTF-8 raises UnicodeDecodeError")
def test_invalid_utf8_in_a_string_gets_malformed(daemon, peers):
    peer = peers(daemon.socket)
    body = packed({**HELLO, "host": "?"}).replace(b"\xa1?", b"\xa2\xff\xfe")
    peer.send(PREFACE + struct.pack(">I", len(body)) + body)
    frames = peer.read_until_closed()
    assert [(f["type"], f["code"]) for f in frames] == [("error", "malformed")]


@pytest.mark.xfail(strict=True, reason="protocol.md appendix item 2: ingest.py builds HelloOk "
                   "without the daemon's max_frame_bytes setting")
def test_hello_ok_announces_the_frame_limit_the_daemon_enforces(daemon_factory, peers):
    daemon = daemon_factory(("--max-frame-bytes", "65536")).start()
    assert peers(daemon.socket).handshake()["max_frame_bytes"] == 65536
