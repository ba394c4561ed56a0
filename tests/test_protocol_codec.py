"""The wire protocol's framing helpers and decoders, without a daemon."""

from __future__ import annotations

import struct

import msgspec
import pytest
from protocol_support import (
    HELLO,
    RUN_ID,
    RUN_START,
    STEP_END,
    STEP_ID,
    STEP_START,
    T0,
    batch,
    client_decode,
    packed,
    without,
)

from traceforge_protocol import wire as protocol

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


def assert_rejected(message: dict, repaired: dict) -> None:
    """``message`` is refused and ``repaired`` (the same with one field put right) is not."""
    with pytest.raises(msgspec.ValidationError):
        client_decode(message)
    assert client_decode(repaired)


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

    # These tests check which messages are refused, never how msgspec words the refusal:
    # a field is shown to be the cause when the same message with only that field repaired
    # decodes.

    @pytest.mark.parametrize("message, repaired", [
        ({"type": "hello"}, HELLO),
        ({"type": "batch", "events": []}, {"type": "batch", "seq": 1, "events": []}),
        ({"type": "batch", "seq": 1}, {"type": "batch", "seq": 1, "events": []}),
        (batch(without(STEP_START, "step_id")), batch(STEP_START)),
        (batch(without(STEP_END, "end_ns")), batch(STEP_END)),
        ({"seq": 1, "events": []}, {"type": "batch", "seq": 1, "events": []}),
    ])
    def test_a_missing_required_field_is_rejected(self, message, repaired):
        assert_rejected(message, repaired)

    @pytest.mark.parametrize("message, repaired", [
        ({"type": "hello", "versions": "1"}, {"type": "hello", "versions": [1]}),
        ({"type": "hello", "versions": [1], "pid": True}, {"type": "hello", "versions": [1], "pid": 1}),
        ({"type": "hello", "versions": [1], "token": 123}, {"type": "hello", "versions": [1], "token": "1"}),
        (batch({**STEP_START, "start_ns": 1.0}), batch({**STEP_START, "start_ns": 1})),
        (batch({**STEP_START, "name": b"call_llm"}), batch({**STEP_START, "name": "call_llm"})),
        (batch({**STEP_END, "tokens_input": None}), batch({**STEP_END, "tokens_input": 0})),
        (batch({**STEP_END, "cost_usd": "0.25"}), batch({**STEP_END, "cost_usd": 0.25})),
        (batch({**RUN_START, "metadata_json": None}), batch({**RUN_START, "metadata_json": "{}"})),
        (batch(STEP_START, seq="1"), batch(STEP_START, seq=1)),
    ])
    def test_a_wrong_type_is_rejected(self, message, repaired):
        assert_rejected(message, repaired)

    def test_a_batch_of_more_than_max_batch_events_is_rejected(self):
        assert len(client_decode(batch(*[STEP_START] * protocol.MAX_BATCH_EVENTS)).events) == 1000
        with pytest.raises(msgspec.ValidationError):
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
        # The decoder checks lengths; the hex digits are checked per batch (invalid_id),
        # whose message names the field (the daemon's own wording).
        try:
            decoded = client_decode(batch({**STEP_START, field: value}))
        except msgspec.ValidationError:
            assert client_decode(batch(STEP_START))
            return
        assert f"$.events[0].{field}" in protocol.invalid_id(decoded.events)

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
        with pytest.raises(msgspec.ValidationError):
            client_decode(message)

    def test_drop_counts_ride_on_a_batch_and_a_hello_key_for_them_is_ignored(self):
        assert client_decode(batch()).dropped == {}
        counts = {"queue_full": 3, "too_large": 1}
        assert client_decode({**batch(), "dropped": counts}).dropped == counts
        # `dropped` was a hello field in an earlier draft: now it is an unknown key, skipped.
        hello = client_decode({**HELLO, "dropped": {"queue_full": 3}})
        assert hello == client_decode(HELLO) and not hasattr(hello, "dropped")

    @pytest.mark.parametrize("dropped", [
        {"queue_full": 1.5}, {"queue_full": None}, {7: 1}, None, [["queue_full", 1]],
        {"queue_full": -1},
    ])
    def test_drop_counts_are_a_map_of_str_to_a_count(self, dropped):
        assert_rejected({**batch(), "dropped": dropped}, {**batch(), "dropped": {"queue_full": 1}})

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
        with pytest.raises(msgspec.ValidationError):
            protocol.client_message_decoder.decode(body)



# ---- integer ranges ----

BEYOND_64_BITS = 2**63  # one above what SQLite stores; still a valid msgpack uint 64

INTEGER_FIELDS = {
    # name: a message holding ``value`` in that field
    "hello.pid": lambda value: {**HELLO, "pid": value},
    "batch.seq": lambda value: batch(seq=value),
    "batch.dropped": lambda value: {**batch(), "dropped": {"queue_full": value}},
    "run_start.start_ns": lambda value: batch({**RUN_START, "start_ns": value}),
    "step_start.start_ns": lambda value: batch({**STEP_START, "start_ns": value}),
    "step_end.end_ns": lambda value: batch({**STEP_END, "end_ns": value}),
    **{f"step_end.{field}": (lambda field: lambda value: batch({**STEP_END, field: value}))(field)
       for field in ("tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write")},
}


@pytest.mark.parametrize("field", sorted(INTEGER_FIELDS))
def test_every_stored_integer_is_refused_beyond_what_sqlite_holds(field):
    message = INTEGER_FIELDS[field]
    assert protocol.INT64_MAX == BEYOND_64_BITS - 1
    assert client_decode(message(protocol.INT64_MAX))
    with pytest.raises(protocol.Refused) as refused:
        protocol.decode_client_frame(packed(message(BEYOND_64_BITS)))
    assert refused.value.code == "invalid_event"
    assert refused.value.seq == (None if field.startswith("hello") else
                                 BEYOND_64_BITS if field == "batch.seq" else 1)


@pytest.mark.parametrize("cost", [float("inf"), float("-inf"), float("nan"), -0.5])
def test_a_cost_must_be_a_finite_number_not_below_zero(cost):
    assert_rejected(batch({**STEP_END, "cost_usd": cost}), batch({**STEP_END, "cost_usd": 1e308}))


# ---- repeated keys ----


def raw_map(*pairs: tuple) -> bytes:
    """A msgpack map written pair by pair, so it can hold a key twice. A bytes key or
    value is taken as already encoded."""
    assert len(pairs) <= 15
    encoded = [item if isinstance(item, bytes) else packed(item) for pair in pairs for item in pair]
    return bytes([0x80 | len(pairs)]) + b"".join(encoded)


def raw_batch(*extra: tuple, events: bytes = b"\x90", seq: int = 4) -> bytes:
    return raw_map(("type", "batch"), ("seq", seq), ("events", events), *extra)


def event_with(*extra: tuple) -> bytes:
    return raw_map(*STEP_START.items(), *extra)


REPEATS = {
    # name: (frame body, the seq the refusal names, the key, the path of its map)
    "the same type twice in a hello": (
        raw_map(("type", "hello"), ("type", "hello"), ("versions", [1])), None, "type", "$"),
    "the same type twice in an event": (
        raw_batch(events=b"\x91" + event_with(("type", "step_start"))), 4, "type", "$.events[0]"),
    "a count twice with one value": (
        raw_batch(events=b"\x91" + raw_map(*STEP_END.items(), ("tokens_input", 7),
                                            ("tokens_input", 7))),
        4, "tokens_input", "$.events[0]"),
    "a drop reason twice": (
        raw_batch(("dropped", raw_map(("queue_full", 1), ("queue_full", 1)))),
        4, "queue_full", "$.dropped"),
    "the seq twice: no one batch to name": (
        raw_map(("type", "batch"), ("seq", 4), ("seq", 4), ("events", [])), None, "seq", "$"),
    "one key as a fixstr and as a str 8": (
        raw_batch(("x-a", 1), (b"\xd9\x03x-a", 1)), 4, "x-a", "$"),
    "inside a map under an unknown key": (
        raw_batch(("x-map", raw_map(("a", 1), ("a", 2)))), 4, "a", "$.x-map"),
    "inside an array under an unknown key": (
        raw_batch(("x-list", b"\x92\x80" + raw_map(("a", 1), ("a", 1)))), 4, "a", "$.x-list[1]"),
    "an integer key written in two widths": (
        raw_batch(("x-ints", raw_map((1, "a"), (b"\xcc\x01", "b")))), 4, 1, "$.x-ints"),
    "inside an unknown key of an event": (
        raw_batch(events=b"\x92" + packed(STEP_START) + event_with(
            ("x-map", raw_map(("b", None), ("b", None))))), 4, "b", "$.events[1].x-map"),
}


@pytest.mark.parametrize("case", list(REPEATS))
def test_a_key_repeated_in_any_map_of_a_frame_is_refused(case):
    body, seq, key, path = REPEATS[case]
    msgspec.msgpack.decode(body)  # valid msgpack: msgspec alone would keep the last copy
    with pytest.raises(protocol.Refused) as refused:
        protocol.decode_client_frame(body)
    assert (refused.value.code, refused.value.seq) == ("invalid_event", seq)
    assert f"repeated key {key!r} - at `{path}`" in refused.value.message


NOT_REPEATS = {
    "1, 1.0, true and '1'": raw_batch(
        ("x-keys", raw_map((1, "int"), (1.0, "float"), (True, "bool"), ("1", "str")))),
    "one key in two events": raw_batch(
        events=b"\x92" + packed(STEP_START) + packed(dict(reversed(STEP_START.items())))),
    "one key at three depths": raw_batch(
        ("x-nested", raw_map(("a", raw_map(("a", 1))), ("b", b"\x91" + raw_map(("a", 1)))))),
}


@pytest.mark.parametrize("case", list(NOT_REPEATS))
def test_keys_that_differ_in_type_or_sit_in_different_maps_are_not_repeats(case):
    assert protocol.decode_client_frame(NOT_REPEATS[case])


def test_the_reference_encoding_and_other_encodings_decode_alike():
    canonical = packed(batch(STEP_START, STEP_END, seq=4))
    reordered = raw_batch(events=b"\x92" + packed(dict(reversed(STEP_START.items())))
                          + packed(STEP_END))
    assert protocol.decode_client_frame(canonical) == protocol.decode_client_frame(reordered)
