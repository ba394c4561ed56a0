"""The wire protocol: framing helpers and decoders, then a real daemon spoken to by hand.

The daemon tests use only what protocol.md says: the preface bytes, a big-endian length, and
plain msgpack maps built as dicts. No TraceForge code runs on the client side, so they check
the document as much as the daemon.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
import socket
import sqlite3
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import msgspec
import pytest
from conftest import DaemonProcess, wait_until

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
            "host", "session",
        ]
        body = protocol.encode_frame(protocol.Batch(seq=1, events=[]))[4:]
        assert msgspec.msgpack.decode(body) == {
            "type": "batch", "seq": 1, "events": [], "dropped": {},
        }
        assert list(msgspec.msgpack.decode(body)) == ["type", "seq", "events", "dropped"]


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
        # The decoder checks lengths; the hex digits are checked per batch (invalid_id).
        with pytest.raises(msgspec.ValidationError, match=rf"at `\$.events\[0\].{field}`"):
            decoded = client_decode(batch({**STEP_START, field: value}))
            problem = protocol.invalid_id(decoded.events)
            if problem:
                raise msgspec.ValidationError(problem)

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

    def test_drop_counts_ride_on_a_batch_and_a_hello_key_for_them_is_ignored(self):
        assert client_decode(batch()).dropped == {}
        counts = {"queue_full": 3, "too_large": 1}
        assert client_decode({**batch(), "dropped": counts}).dropped == counts
        # `dropped` was a hello field in an earlier draft: now it is an unknown key, skipped.
        hello = client_decode({**HELLO, "dropped": {"queue_full": 3}})
        assert hello == client_decode(HELLO) and not hasattr(hello, "dropped")

    @pytest.mark.parametrize("dropped, where", [
        ({"queue_full": 1.5}, "$.dropped[...]"),
        ({"queue_full": None}, "$.dropped[...]"),
        ({7: 1}, "$.dropped"),
        (None, "$.dropped"),
        ([["queue_full", 1]], "$.dropped"),
    ])
    def test_drop_counts_are_a_map_of_str_to_int(self, dropped, where):
        with pytest.raises(msgspec.ValidationError) as caught:
            client_decode({**batch(), "dropped": dropped})
        assert f"`{where}`" in str(caught.value)

    def test_negative_drop_counts_are_rejected(self):
        with pytest.raises(msgspec.ValidationError, match=r"\$\.dropped"):
            client_decode({**batch(), "dropped": {"queue_full": -1}})

    @pytest.mark.parametrize("message, seq", [
        (batch({**STEP_START, "step_id": "x"}, seq=7), 7),
        (batch(*[STEP_START] * (protocol.MAX_BATCH_EVENTS + 1), seq=8), 8),
        ({**batch(seq=9), "dropped": {"queue_full": "3"}}, 9),
        ({"type": "batch", "seq": 0, "events": []}, 0),
    ])
    def test_the_seq_of_an_invalid_batch_can_still_be_read(self, message, seq):
        with pytest.raises(msgspec.ValidationError):
            client_decode(message)
        assert protocol.batch_seq_decoder.decode(packed(message)).seq == seq

    @pytest.mark.parametrize("message", [
        {"type": "batch", "seq": "1", "events": []},
        {"type": "batch", "events": []},
        HELLO,
        [1, 2],
    ])
    def test_without_a_readable_seq_there_is_none_to_report(self, message):
        with pytest.raises(msgspec.ValidationError):
            protocol.batch_seq_decoder.decode(packed(message))

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


def oversized() -> bytes:
    return struct.pack(">I", protocol.MAX_FRAME_BYTES + 1)  # and no body at all


def with_invalid_utf8(message: dict) -> bytes:
    """``message`` as a frame, its one "?" string replaced by two bytes that are not UTF-8."""
    body = packed(message)
    assert body.count(b"\xa1?") == 1
    body = body.replace(b"\xa1?", b"\xa2\xff\xfe")
    return struct.pack(">I", len(body)) + body


BAD_STEP = {**STEP_START, "step_id": "x"}

REJECTIONS = {
    # name: (bytes the client sends, frames before the error, error code, words in the message,
    #        the error's seq)
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
                      "invalid_event", "$.pid", None),
    "oversized length before the hello": (PREFACE + oversized(), 0, "frame_too_large", "4194305",
                                          None),
    "oversized length after the hello": (PREFACE + frame(HELLO) + oversized(), 1,
                                         "frame_too_large", "4194305", None),
    "zero length": (PREFACE + struct.pack(">I", 0), 0, "malformed", "frame length 0", None),
    "trailing bytes": (PREFACE + frame(HELLO) + struct.pack(">I", len(packed(batch())) + 1)
                       + packed(batch()) + b"\xc0", 1, "malformed", "trailing characters", None),
    "invalid utf-8 in the hello": (PREFACE + with_invalid_utf8({**HELLO, "host": "?"}), 0,
                                   "malformed", "utf-8", None),
    "invalid utf-8 in a batch": (PREFACE + frame(HELLO)
                                 + with_invalid_utf8(batch({**RUN_START, "name": "?"}, seq=4)),
                                 1, "malformed", "utf-8", 4),
    "batch before the hello": (PREFACE + frame(batch(RUN_START)), 0, "hello_required", "hello",
                               None),
    "second hello": (PREFACE + frame(HELLO) + frame(HELLO), 1, "hello_required", "second hello",
                     None),
    "invalid event": (PREFACE + frame(HELLO) + frame(batch(BAD_STEP, seq=1)), 1,
                      "invalid_event", "$.events[0].step_id", 1),
    "seq zero": (PREFACE + frame(HELLO) + frame(batch(seq=0)), 1, "invalid_event", "$.seq", 0),
    "invalid batch before the hello": (PREFACE + frame(batch(BAD_STEP, seq=3)), 0,
                                       "invalid_event", "$.events[0].step_id", 3),
    "a type only the daemon sends": (PREFACE + frame(HELLO) + frame({"type": "ack", "seq": 1}),
                                     1, "invalid_event", "$.type", None),
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


def test_an_invalid_batch_is_named_by_its_seq_and_only_it_is_lost(daemon, peers):
    peer = peers(daemon.socket)
    peer.handshake()
    refused = {**batch(STEP_START, BAD_STEP, seq=2), "dropped": {"queue_full": 5}}
    peer.send(frame(batch(RUN_START, seq=1)) + frame(refused) + frame(batch(STEP_END, seq=3)))
    *acks, error = peer.read_until_closed()
    assert all(ack == {"type": "ack", "seq": 1} for ack in acks), acks  # may lose the race
    assert (error["type"], error["code"], error["seq"]) == ("error", "invalid_event", 2)
    assert (error["fatal"], error["retryable"]) == (True, False)
    assert "$.events[1].step_id" in error["message"]
    # Batch 1 was queued before batch 2 was read: it is committed, acked or not. Nothing of
    # batch 2 is stored, not even its valid event or its drop counts; batch 3 was never read.
    wait_until(lambda: daemon.query("SELECT count(*) FROM runs") == [(1,)], timeout=10)
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
    assert all(ack == {"type": "ack", "seq": 5} for ack in acks), acks
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
                             "--token", "s3cret")).start()
    peer = peers(("127.0.0.1", tcp_port(daemon)))
    assert peer.handshake()["version"] == 1
    peer.send(frame(batch(RUN_START, seq=1)) + frame({"type": "bye"}))
    assert peer.read_until_closed() == [{"type": "ack", "seq": 1}]
    assert one_row(daemon, "SELECT run_id FROM runs") == (RUN_ID,)
    health = f"http://127.0.0.1:{daemon.http_url.rsplit(':', 1)[1]}/api/health"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(health, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(health, headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["events_committed"] == 1


def test_a_tcp_listener_beyond_loopback_asks_every_client_for_the_token(daemon_factory, peers):
    daemon = daemon_factory(("--tcp", "0.0.0.0:0", "--token", "s3cret")).start()
    address = ("127.0.0.1", tcp_port(daemon))  # a loopback peer still needs it
    for token in (None, "wrong"):
        peer = peers(address)
        peer.send(PREFACE + frame({**HELLO, "token": token}))
        [error] = peer.read_until_closed()
        assert (error["code"], error["retryable"]) == ("auth_failed", False), error
    assert peers(address).handshake(token="s3cret")["version"] == 1
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
