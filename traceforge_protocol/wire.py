"""The TraceForge socket protocol: messages, framing, limits and error codes.

`protocol.md` at the top of the repository is the contract for other languages; this
module is its Python form, shared by the client and the daemon. A connection is:

    client: 4-byte preface b"TFR\\x01"
    both:   frames of a 4-byte big-endian unsigned length + one msgpack map

Every map carries a ``type`` key that selects its Struct below. Rules for evolving it
(from msgspec's schema-evolution guide): new fields are appended with defaults, no
field ever changes type, and receivers ignore keys they do not know.

User payloads (step inputs, outputs, metadata) travel as JSON text, because JSON is
what the store keeps and what the API serves: the daemon stores them without
re-encoding. Times are integer Unix-epoch nanoseconds.
"""

from __future__ import annotations

import struct
import sys
from typing import Annotated, Literal, Optional, Union

import msgspec
from msgspec import Meta

from . import ids, repeats

PREFACE = b"TFR\x01"
"""The first four bytes a client sends: b"TFR" and the framing generation, 1."""

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Largest frame body the daemon accepts; the length is checked before the body is read."""
MAX_BATCH_EVENTS = 1000
MAX_FIELD_BYTES = 1024 * 1024
"""Largest JSON payload (input, output or metadata) a client sends; longer ones are cut."""
MAX_NAME_CHARS = 512

RunId = Annotated[str, Meta(min_length=ids.RUN_ID_LENGTH, max_length=ids.RUN_ID_LENGTH)]
"""32 lowercase hex characters: maps losslessly onto an OpenTelemetry trace id. The
decoder checks the length; ``invalid_id`` checks the digits of a whole batch at once,
which costs the daemon a fifth of a regex per id (bench/RESULTS.md)."""
StepId = Annotated[str, Meta(min_length=ids.STEP_ID_LENGTH, max_length=ids.STEP_ID_LENGTH)]
"""16 lowercase hex characters: maps losslessly onto an OpenTelemetry span id."""
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]

# Integer ranges. Every integer the daemon stores or counts goes into an SQLite INTEGER,
# a signed 64-bit number: a larger one makes SQLite raise OverflowError in the writer,
# so the decoder refuses it (invalid_event) before it is queued. Every language has a
# signed 64-bit integer, so no client needs more. Each range is defined here once.
INT64_MAX = 2**63 - 1
"""The largest integer SQLite stores, and so the top of every stored integer's range."""
MAX_FRAME_LENGTH = 2**32 - 1
"""The largest length a frame header can carry (an unsigned 32-bit number)."""

Nanos = Annotated[int, Meta(ge=0, le=INT64_MAX)]
"""A time: nanoseconds since the Unix epoch, up to the year 2262."""
Count = Annotated[int, Meta(ge=0, le=INT64_MAX)]
"""A token or drop count."""
Seq = Annotated[int, Meta(ge=1, le=INT64_MAX)]
"""A batch number."""
Pid = Annotated[int, Meta(ge=0, le=INT64_MAX)]
"""An operating-system process id (0: not given); stored on the rows a connection writes."""
Cost = Annotated[float, Meta(ge=0, le=sys.float_info.max)]
"""US dollars: finite and not negative, so NaN and both infinities are refused (the
upper bound is the largest finite float: only +inf lies above it)."""


class Hello(msgspec.Struct, tag="hello", forbid_unknown_fields=False):
    """First frame of every connection: who is talking and which versions it speaks."""

    versions: list[int]
    proto: str = "traceforge"
    token: Optional[str] = None
    client: str = ""
    client_version: str = ""
    lang: str = ""
    pid: Pid = 0
    host: str = ""
    session: str = ""


class RunStart(msgspec.Struct, tag="run_start", gc=False):
    run_id: RunId
    name: Name
    start_ns: Nanos
    metadata_json: str = "{}"


class RunEnd(msgspec.Struct, tag="run_end", gc=False):
    """End of a run. Carries name and start so it stands alone if its start is lost."""

    run_id: RunId
    name: Name
    start_ns: Nanos
    end_ns: Nanos
    status: Literal["success", "error"] = "success"
    error: Optional[str] = None
    metadata_json: str = "{}"


class StepStart(msgspec.Struct, tag="step_start", gc=False):
    run_id: RunId
    step_id: StepId
    name: Name
    start_ns: Nanos
    parent_step_id: Optional[StepId] = None
    model: Optional[str] = None
    input_json: Optional[str] = None
    metadata_json: Optional[str] = None


class StepEnd(msgspec.Struct, tag="step_end", gc=False):
    """End of a step. Repeats the start's identity fields so it stands alone."""

    run_id: RunId
    step_id: StepId
    name: Name
    start_ns: Nanos
    end_ns: Nanos
    parent_step_id: Optional[StepId] = None
    status: Literal["ok", "error"] = "ok"
    model: Optional[str] = None
    output_json: Optional[str] = None
    tokens_input: Count = 0
    tokens_output: Count = 0
    tokens_cache_read: Count = 0
    tokens_cache_write: Count = 0
    cost_usd: Optional[Cost] = None
    """None: no price is known. With tokens used that makes the step unpriced; a step that
    used no tokens costs nothing (the daemon's rule: ``storage/rows.py``)."""
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    traceback: Optional[str] = None
    metadata_json: Optional[str] = None


Event = Union[RunStart, RunEnd, StepStart, StepEnd]
# Events hold only strings and numbers, so they cannot be part of a reference cycle:
# gc=False keeps the garbage collector from scanning the thousands a busy client holds.


class BatchSeq(msgspec.Struct, tag="batch"):
    """Only a batch's seq: lets the daemon name the batch it rejects as invalid."""

    seq: int


class Batch(msgspec.Struct, tag="batch"):
    """Events to store. The daemon acks ``seq`` once they are committed."""

    seq: Seq
    events: Annotated[list[Event], Meta(max_length=MAX_BATCH_EVENTS)]
    dropped: dict[str, Count] = {}
    """Events the client dropped and has not had confirmed, by reason (e.g. queue_full);
    this batch's ack confirms them."""


class EncodedBatch(msgspec.Struct, tag="batch"):
    """A Batch whose events are already msgpack-encoded (an array of event maps): it
    encodes to exactly the bytes of the equivalent Batch. Lets a client keep sent batches
    as bytes and renumber them for a resend without encoding the events again."""

    seq: int
    events: msgspec.Raw
    dropped: dict[str, int] = {}


class Bye(msgspec.Struct, tag="bye"):
    """The client is done; the daemon acks what it has and closes."""


class HelloOk(msgspec.Struct, tag="hello_ok"):
    version: int
    server: str = "traceforge-daemon"
    server_version: str = ""
    max_frame_bytes: Annotated[int, Meta(ge=1, le=MAX_FRAME_LENGTH)] = MAX_FRAME_BYTES
    max_batch_events: Annotated[int, Meta(ge=1, le=INT64_MAX)] = MAX_BATCH_EVENTS
    ack: str = "commit"


class Ack(msgspec.Struct, tag="ack"):
    """Every batch with a seq up to and including this one is committed to SQLite."""

    seq: Seq


class Error(msgspec.Struct, tag="error"):
    code: str
    message: str
    fatal: bool = True
    retryable: bool = False
    seq: Optional[int] = None
    versions: Optional[list[int]] = None
    retry_after_ms: Optional[int] = None
    """With a retryable error: wait at least this long before connecting again (the
    daemon's storage is failing, or it is at its connection limit). None: no hint."""


class JsonBatch(msgspec.Struct, forbid_unknown_fields=False):
    """The body of ``POST /api/ingest``: the events of a batch, as JSON, for clients with
    no msgpack. Instead of a hello it says who sends them (as the hello's fields do); it
    has no ``seq``, since the HTTP answer itself is the ack."""

    events: Annotated[list[Event], Meta(max_length=MAX_BATCH_EVENTS)]
    dropped: dict[str, Count] = {}
    pid: Pid = 0
    host: str = ""
    session: str = ""


ClientMessage = Union[Hello, Batch, Bye]
ServerMessage = Union[HelloOk, Ack, Error]

# Error codes, as listed in protocol.md.
BAD_PREFACE = "bad_preface"
HELLO_REQUIRED = "hello_required"
HELLO_TIMEOUT = "hello_timeout"
UNSUPPORTED_VERSION = "unsupported_version"
AUTH_FAILED = "auth_failed"
FRAME_TOO_LARGE = "frame_too_large"
MALFORMED = "malformed"
INVALID_EVENT = "invalid_event"
IDLE_TIMEOUT = "idle_timeout"
FRAME_TIMEOUT = "frame_timeout"
SHUTTING_DOWN = "shutting_down"
STORAGE_ERROR = "storage_error"
STORAGE_REJECTED = "storage_rejected"
OVERLOADED = "overloaded"

def invalid_id(events: list) -> Optional[str]:
    """None if every run and step id in ``events`` is lowercase hex; else the error, worded
    as the decoder words its own, with the path of the first bad id."""
    run_ids = "".join([event.run_id for event in events])
    steps = [event for event in events if type(event) in (StepStart, StepEnd)]
    step_ids = "".join([event.step_id for event in steps])
    parent_ids = "".join([event.parent_step_id or "" for event in steps])
    if ids.is_hex(run_ids + step_ids + parent_ids):
        return None
    for index, event in enumerate(events):
        for field in ("run_id", "step_id", "parent_step_id"):
            value = getattr(event, field, None)
            if value is not None and not ids.is_hex(value):
                pattern = ids.RUN_ID_PATTERN if field == "run_id" else ids.STEP_ID_PATTERN
                return f"Expected `str` matching regex {pattern!r} - at `$.events[{index}].{field}`"
    return None


class Refused(Exception):
    """A client frame the daemon refuses: the error ``code`` it answers with, a message
    for the client's log, and the ``seq`` of the batch concerned when it can be read."""

    def __init__(self, code: str, message: str, seq: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq


def decode_client_frame(body: bytes) -> Union[Hello, Batch, Bye]:
    """A client frame's body as its message, checked against every rule protocol.md sets
    for one frame on its own (types, ranges, formats, no repeated key); raises ``Refused``.
    The daemon's own checks across frames (a batch's seq above the previous one) and the
    hex digits of ids (``invalid_id``) come after."""
    try:
        message = client_message_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise Refused(INVALID_EVENT, f"invalid message: {exc}", _readable_seq(body)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise Refused(MALFORMED, f"not a msgpack message: {exc}", _readable_seq(body)) from None
    repeat = repeats.find_repeat(body, message, _SCALAR_FIELDS)
    if repeat is not None:
        # A repeated seq leaves no one batch number to name.
        named = repeat.path == "$" and repeat.key == "seq"
        seq = message.seq if type(message) is Batch and not named else None
        raise Refused(
            INVALID_EVENT, f"invalid message: repeated key {repeat.key!r} - at `{repeat.path}`",
            seq,
        )
    return message


def decode_json_batch(body: bytes) -> JsonBatch:
    """A ``POST /api/ingest`` body as its batch, held to the same rules as a socket batch
    (types, ranges, formats, no repeated key, lowercase hex ids); raises ``Refused``."""
    try:
        batch = json_batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise Refused(INVALID_EVENT, f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Refused(MALFORMED, f"not a JSON message: {exc}") from None
    repeated = repeats.find_json_repeat(body)
    if repeated is not None:
        raise Refused(INVALID_EVENT, f"invalid message: repeated key {repeated!r}")
    bad_id = invalid_id(batch.events)
    if bad_id:
        raise Refused(INVALID_EVENT, f"invalid message: {bad_id}")
    return batch


def _readable_seq(body: bytes) -> Optional[int]:
    """The seq of an invalid batch, when it has one, so its sender can drop just that batch."""
    try:
        return batch_seq_decoder.decode(body).seq
    except Exception:
        return None


_CONTAINER_FIELDS = frozenset({"events", "dropped", "versions"})
_SCALAR_FIELDS = {
    cls: frozenset(cls.__struct_fields__).union({"type"}) - _CONTAINER_FIELDS
    for cls in (Hello, Batch, Bye, RunStart, RunEnd, StepStart, StepEnd)
}
"""Once a frame has decoded, these fields of each message hold one value, never a map."""

_encoder = msgspec.msgpack.Encoder()


def encode_frame(message: msgspec.Struct) -> bytes:
    """One message as a complete frame: length prefix plus msgpack body."""
    buffer = bytearray(4)
    _encoder.encode_into(message, buffer, 4)
    FRAME_HEADER.pack_into(buffer, 0, len(buffer) - 4)
    return bytes(buffer)


client_message_decoder = msgspec.msgpack.Decoder(ClientMessage)
batch_seq_decoder = msgspec.msgpack.Decoder(BatchSeq)
server_message_decoder = msgspec.msgpack.Decoder(ServerMessage)
json_batch_decoder = msgspec.json.Decoder(JsonBatch)
