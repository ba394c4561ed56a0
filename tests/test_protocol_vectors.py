"""protocol.md against protocol.py: the test vectors byte for byte, and nothing undocumented.

Each vector in protocol.md is a fenced block ```tf-vector NAME``` (or ```tf-vector-decode
NAME```, ```tf-vector-reject NAME```) holding JSON, a ``---`` line, and the complete frame
as hex with ``#`` comments. Exact vectors must come out of our encoder byte for byte and
decode back to the same JSON; decode-only vectors are other valid encodings that must decode
to the JSON; reject vectors are frames the daemon refuses with the error in the JSON.

The remaining tests fail when the code gains a message, field, default, type, rule or error
code that protocol.md does not describe, or when a timeout or limit of the daemon's settings
differs from the document's, so the document cannot fall behind.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path
from typing import NamedTuple

import msgspec
import msgspec.inspect as mi
import pytest

from traceforge_protocol import wire as protocol
from traceforge_protocol.home import DaemonState
from traceforge_daemon import settings as daemon_settings

DOC = (Path(__file__).resolve().parent.parent / "protocol.md").read_text(encoding="utf-8")

CLIENT_MESSAGES = typing.get_args(protocol.ClientMessage)
SERVER_MESSAGES = typing.get_args(protocol.ServerMessage)
EVENTS = typing.get_args(protocol.Event)
DOCUMENTED = CLIENT_MESSAGES + SERVER_MESSAGES + EVENTS
STRUCTS = {cls.__struct_config__.tag: cls for cls in DOCUMENTED}
TAGGED = [
    cls for cls in vars(protocol).values()
    if isinstance(cls, type) and issubclass(cls, msgspec.Struct) and cls.__struct_config__.tag
]
ERROR_CODES = {
    value for name, value in vars(protocol).items()
    if isinstance(value, str) and name == value.upper()  # BAD_PREFACE = "bad_preface"
}


class Vector(NamedTuple):
    kind: str  # "tf-vector" (exact), "tf-vector-decode" or "tf-vector-reject"
    name: str
    message: dict
    frame: bytes

    def __str__(self) -> str:
        return self.name


def parse_vectors(text: str) -> list[Vector]:
    vectors = []
    for match in re.finditer(r"^```(tf-vector(?:-decode|-reject)?) (\S+)\n(.*?)^```$", text,
                             re.M | re.S):
        kind, name, content = match.groups()
        json_part, separator, hex_part = content.partition("\n---\n")
        assert separator, f"vector {name}: no '---' line between the JSON and the hex"
        digits = "".join(line.split("#", 1)[0] for line in hex_part.splitlines())
        frame = bytes.fromhex("".join(digits.split()))
        vectors.append(Vector(kind, name, json.loads(json_part), frame))
    return vectors


ALL_VECTORS = parse_vectors(DOC)
VECTORS = [v for v in ALL_VECTORS if v.kind != "tf-vector-reject"]  # the ones that decode
EXACT = [v for v in VECTORS if v.kind == "tf-vector"]
DECODE_ONLY = [v for v in VECTORS if v.kind == "tf-vector-decode"]
REJECT = [v for v in ALL_VECTORS if v.kind == "tf-vector-reject"]


def decoder_for(cls: type) -> msgspec.msgpack.Decoder:
    if cls in CLIENT_MESSAGES:
        return protocol.client_message_decoder
    assert cls in SERVER_MESSAGES, f"{cls.__name__} is not a message that travels in a frame"
    return protocol.server_message_decoder


def body_of(frame: bytes) -> bytes:
    (length,) = protocol.FRAME_HEADER.unpack_from(frame)
    assert length == len(frame) - 4, f"the length says {length}, the body has {len(frame) - 4}"
    return frame[4:]


# ---- the vectors ----


def test_the_vectors_parse_and_have_unique_names():
    names = [v.name for v in ALL_VECTORS]
    assert len(EXACT) >= len(CLIENT_MESSAGES) + len(SERVER_MESSAGES)
    assert len(names) == len(set(names)), f"repeated vector names: {names}"


@pytest.mark.parametrize("vector", EXACT, ids=str)
def test_encoding_the_json_gives_exactly_the_frame(vector):
    message = msgspec.convert(vector.message, STRUCTS[vector.message["type"]])
    assert protocol.encode_frame(message).hex(" ") == vector.frame.hex(" ")


@pytest.mark.parametrize("vector", VECTORS, ids=str)
def test_decoding_the_frame_gives_back_the_json(vector):
    cls = STRUCTS[vector.message["type"]]
    decoded = decoder_for(cls).decode(body_of(vector.frame))
    assert type(decoded) is cls
    assert msgspec.to_builtins(decoded) == vector.message


@pytest.mark.parametrize("vector", EXACT, ids=str)
def test_an_exact_vectors_json_shows_the_wire_map_key_for_key_in_order(vector):
    on_the_wire = msgspec.msgpack.decode(body_of(vector.frame))
    assert json.dumps(on_the_wire) == json.dumps(vector.message)


@pytest.mark.parametrize("vector", DECODE_ONLY, ids=str)
def test_a_decode_only_vector_really_differs_from_the_reference_encoding(vector):
    message = msgspec.convert(vector.message, STRUCTS[vector.message["type"]])
    assert protocol.encode_frame(message) != vector.frame


@pytest.mark.parametrize("vector", DECODE_ONLY, ids=str)
def test_a_decode_only_vectors_json_is_the_decoded_message_in_the_reference_order(vector):
    decoded = decoder_for(STRUCTS[vector.message["type"]]).decode(body_of(vector.frame))
    assert json.dumps(msgspec.to_builtins(decoded)) == json.dumps(vector.message)
    on_the_wire = msgspec.msgpack.decode(body_of(vector.frame))
    assert list(on_the_wire) != list(vector.message)  # as section 17 says: not wire order


@pytest.mark.parametrize("vector", REJECT, ids=str)
def test_a_reject_vector_is_valid_msgpack_and_refused_with_its_error(vector):
    body = body_of(vector.frame)
    msgspec.msgpack.decode(body)  # a plain decoder takes it
    with pytest.raises(protocol.Refused) as refused:
        protocol.decode_client_frame(body)
    assert {"code": refused.value.code, "seq": refused.value.seq} == vector.message
    assert vector.message["code"] in ERROR_CODES


def test_the_reject_vectors_cover_each_rule_a_plain_decoder_does_not_check():
    words = {v.name for v in REJECT}
    assert {"batch_count_out_of_range", "batch_infinite_cost", "batch_repeated_type"} <= words


def test_the_exact_vectors_cover_every_message_and_every_event_kind():
    messages = {v.message["type"] for v in EXACT}
    events = {e["type"] for v in EXACT if v.message["type"] == "batch" for e in v.message["events"]}
    for cls in CLIENT_MESSAGES + SERVER_MESSAGES:
        assert cls.__struct_config__.tag in messages, f"no vector for {cls.__name__}"
    for cls in EVENTS:
        assert cls.__struct_config__.tag in events, f"no batch vector holding a {cls.__name__}"
    codes = {v.message["code"] for v in VECTORS if v.message["type"] == "error"}
    assert codes <= ERROR_CODES, f"vectors use undocumented codes: {codes - ERROR_CODES}"


# ---- the document keeps up with the code ----


def section(heading: str) -> str:
    """From the line ``heading`` to the next heading of level 2 or 3."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{2,3}} |\Z)", DOC, re.M | re.S)
    assert match, f"protocol.md has no heading {heading!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def wire_type(t: mi.Type) -> str:
    """A field's type in protocol.md's notation (section 5.1)."""
    if isinstance(t, mi.UnionType):
        options = [x for x in t.types if not isinstance(x, mi.NoneType)]
        text = "map" if all(isinstance(x, mi.StructType) for x in options) else " or ".join(
            wire_type(x) for x in options
        )
        return text + " or nil" if len(options) < len(t.types) else text
    if isinstance(t, mi.LiteralType):
        assert all(isinstance(v, str) for v in t.values), t
        return "str"
    if isinstance(t, mi.ListType):
        return f"array of {wire_type(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"map of {wire_type(t.key_type)} to {wire_type(t.value_type)}"
    names = {mi.StrType: "str", mi.IntType: "int", mi.FloatType: "float", mi.BoolType: "bool",
             mi.StructType: "map"}
    assert type(t) in names, f"no name for {t!r}: add one here and to protocol.md section 5.1"
    return names[type(t)]


ID_PATTERNS = {"^[0-9a-f]{32}$": "run id", "^[0-9a-f]{16}$": "step id"}
ID_LENGTHS = {32: "run id", 16: "step id"}


def rule_fragments(t: mi.Type) -> list[str]:
    """What the Rules cell must mention for the constraints in ``t``."""
    if isinstance(t, mi.UnionType):
        return [f for x in t.types for f in rule_fragments(x)]
    if isinstance(t, mi.StrType):
        fragments = [ID_PATTERNS.get(t.pattern, t.pattern)] if t.pattern else []
        if t.min_length == t.max_length and t.max_length in ID_LENGTHS:
            fragments.append(ID_LENGTHS[t.max_length])  # hex digits: protocol.invalid_id
        elif t.min_length is not None or t.max_length is not None:
            fragments.append(f"{t.min_length or 0} to {t.max_length} characters")
        return fragments
    if isinstance(t, mi.IntType):
        if t.le is not None:
            return [f"{t.ge} to {power_of_two(t.le + 1)}−1"]
        return [f"≥ {t.ge}"] if t.ge is not None else []
    if isinstance(t, mi.FloatType):
        return (([f"≥ {t.ge:g}"] if t.ge is not None else [])
                + (["finite"] if t.le == sys.float_info.max else []))
    if isinstance(t, mi.DictType):
        return rule_fragments(t.value_type)
    if isinstance(t, mi.ListType):
        return [str(t.max_length)] if t.max_length is not None else []
    if isinstance(t, mi.LiteralType):
        return [f"`{value}`" for value in t.values]
    return []


def power_of_two(value: int) -> str:
    """2**63 as protocol.md writes it: ``2^63``."""
    assert value & (value - 1) == 0, f"{value} is not a power of two: say how to write it"
    return f"2^{value.bit_length() - 1}"


def documented_default(cell: str) -> object:
    if cell == "required":
        return cell
    assert cell.startswith("`") and cell.endswith("`"), f"write the default as `literal`: {cell!r}"
    literal = cell[1:-1]
    return None if literal == "nil" else json.loads(literal)


@pytest.mark.parametrize("tag", sorted(STRUCTS))
def test_every_message_is_documented_field_by_field(tag):
    rows = table_rows(section(f"### `{tag}`"))
    fields = mi.type_info(STRUCTS[tag]).fields
    assert [row[0] for row in rows] == [f"`{f.name}`" for f in fields], "fields or their order"
    for row, field in zip(rows, fields):
        name, type_cell, default_cell, rules = row
        assert type_cell == wire_type(field.type), f"type of {field.name}"
        if field.required:
            expected = "required"
        elif field.default is not msgspec.NODEFAULT:
            expected = field.default
        else:
            expected = field.default_factory()
        default = documented_default(default_cell)
        assert (type(default), default) == (type(expected), expected), f"default of {field.name}"
        for fragment in rule_fragments(field.type):
            assert fragment in rules, f"the rules of {field.name} should mention {fragment!r}"


def test_every_tagged_struct_is_a_documented_message_or_a_lenient_view_of_one():
    # BatchSeq reads only a batch's seq, so the daemon can name an invalid batch: it needs no
    # table of its own, but it must not know a field or a type the batch table does not show.
    for cls in TAGGED:
        if cls in DOCUMENTED:
            continue
        tag = cls.__struct_config__.tag
        assert tag in STRUCTS, f"{cls.__name__} has the tag {tag!r}, which no message has"
        documented = {f.name: f for f in mi.type_info(STRUCTS[tag]).fields}
        for field in mi.type_info(cls).fields:
            assert field.name in documented, f"{cls.__name__}.{field.name} is undocumented"
            if isinstance(field.type, mi.RawType):
                continue  # pre-encoded bytes of the documented field (EncodedBatch.events)
            assert wire_type(field.type) == wire_type(documented[field.name].type)


def test_an_encoded_batch_is_byte_for_byte_the_batch_it_stands_for():
    events = [
        protocol.RunStart(run_id="4bf92f3577b34da6a3ce929d0e0e4736", name="r", start_ns=1),
        protocol.StepEnd(run_id="4bf92f3577b34da6a3ce929d0e0e4736", step_id="00f067aa0ba902b7",
                         name="s", start_ns=1, end_ns=2),
    ]
    dropped = {"queue_full": 3}
    raw = msgspec.Raw(msgspec.msgpack.encode(events))
    assert protocol.encode_frame(protocol.EncodedBatch(7, raw, dropped)) == protocol.encode_frame(
        protocol.Batch(seq=7, events=events, dropped=dropped))


def test_every_error_code_has_a_row_in_the_error_table_and_no_row_is_invented():
    assert "BAD_PREFACE" in vars(protocol) and "bad_preface" in ERROR_CODES
    documented = {row[0].strip("`") for row in table_rows(section("## 10. Errors"))}
    assert documented == ERROR_CODES


def test_the_limits_and_the_preface_are_the_ones_in_the_code():
    assert protocol.PREFACE == bytes.fromhex("54 46 52 01")
    assert "`54 46 52 01`" in DOC
    assert protocol.MAX_FRAME_BYTES == 4_194_304 and "4,194,304 (4 MiB)" in DOC
    assert protocol.MAX_BATCH_EVENTS == 1000 and "0 to 1000 events (`max_batch_events`)" in DOC
    assert protocol.MAX_FIELD_BYTES == 1024 * 1024 and "under 1 MiB (`MAX_FIELD_BYTES`)" in DOC
    assert protocol.SUPPORTED_VERSIONS == (1,) and "Only version 1 exists." in DOC


def test_the_timeouts_and_limits_are_the_daemon_settings_with_their_flags():
    defaults = {s.name: s.default for s in daemon_settings.SETTINGS}
    rows = {row[0].strip("`"): row for row in table_rows(section("## 11. Timeouts"))}
    for name in ("hello_timeout", "body_timeout", "idle_timeout"):
        _, default, _, flag, _ = rows[name]
        assert default == f"{defaults[name]:g} s", f"default of {name}"
        assert flag == f"`--{name.replace('_', '-')}`", f"flag of {name}"
    assert rows["body_timeout"][4] == "`frame_timeout`"
    assert rows["idle_timeout"][4] == "`idle_timeout`"
    assert rows["hello_timeout"][4] == "`hello_timeout`"
    assert defaults["max_frame_bytes"] == protocol.MAX_FRAME_BYTES and "`--max-frame-bytes`" in DOC
    assert defaults["max_pending_events"] == 200_000
    assert "200,000 events (`max_pending_events`, set with `--max-pending-events`)" in DOC


def test_daemon_json_is_documented_field_by_field():
    # protocol.md section 2 is how clients in other languages find a running daemon.
    text = DOC[DOC.index("**`daemon.json`.**"):DOC.index("## 3. Preface")]
    rows = table_rows(text)
    fields = mi.type_info(DaemonState).fields
    assert [row[0] for row in rows] == [f"`{f.name}`" for f in fields], "fields or their order"
    json_types = {mi.IntType: "number", mi.FloatType: "number", mi.StrType: "string"}
    for row, field in zip(rows, fields):
        t = field.type
        nullable = isinstance(t, mi.UnionType)
        if nullable:
            [t] = [x for x in t.types if not isinstance(x, mi.NoneType)]
        assert row[1] == json_types[type(t)] + (" or null" if nullable else ""), field.name
    assert "`unix:///absolute/path.sock`" in text and "a bare path" in text


def test_the_truncation_rule_is_the_python_clients():
    # Section 5.3 says what a truncated payload looks like, byte for byte in its length.
    from traceforge_client.tracer import to_json

    assert f"{protocol.MAX_FIELD_BYTES:,} bytes" in DOC
    assert f"first {protocol.MAX_FIELD_BYTES // 4:,} bytes (256 KiB)" in DOC
    value = "é" * protocol.MAX_FIELD_BYTES  # 2 bytes each: the cut falls inside one
    marker = json.loads(to_json(value))
    original = json.dumps(value, ensure_ascii=False).encode()
    assert marker["_traceforge_truncated"] is True
    assert marker["original_bytes"] == len(original)
    preview = marker["preview"].encode()
    assert original.startswith(preview)
    assert protocol.MAX_FIELD_BYTES // 4 - 3 <= len(preview) <= protocol.MAX_FIELD_BYTES // 4
