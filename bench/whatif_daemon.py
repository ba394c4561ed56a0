"""Run the real daemon with a suggested change applied in memory, to price it end to end.

    python bench/whatif_daemon.py CHANGES start --http 127.0.0.1:0 ...

CHANGES is a comma-separated list of:

  no-id-regex       run and step ids checked by length (32 / 16 characters) instead of
                    by Meta(pattern=...) regexes when frames are decoded
  decode-in-writer  the event loop decodes only a batch's seq and event count; the events
                    themselves are decoded (and validated) by the writer thread, just
                    before apply() needs them, so the two threads stop trading the GIL
                    for every frame

Nothing on disk changes; bench/ingest.py --whatif CHANGES runs these daemons beside the
real one. These are experiments: an invalid event in decode-in-writer mode fails the
writer instead of getting the protocol's error frame.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Union

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHANGES = ("no-id-regex", "decode-in-writer")


def relax_id_patterns() -> None:
    """Make protocol.py's Meta(pattern=hex) ids into length checks; call before importing it."""
    original = msgspec.Meta

    def Meta(*args, pattern=None, **kwargs):  # noqa: N802 (stands in for msgspec.Meta)
        if pattern == "^[0-9a-f]{32}$":
            kwargs.update(min_length=32, max_length=32)
        elif pattern == "^[0-9a-f]{16}$":
            kwargs.update(min_length=16, max_length=16)
        elif pattern is not None:
            kwargs["pattern"] = pattern
        return original(*args, **kwargs)

    msgspec.Meta = Meta
    import traceforge_protocol.wire  # noqa: F401  (built with the relaxed Meta)

    msgspec.Meta = original


def decode_in_writer() -> None:
    from traceforge_protocol import wire as protocol

    class Head(msgspec.Struct, tag="batch"):
        seq: int
        events: msgspec.Raw
        dropped: dict[str, int] = {}

    head_decoder = msgspec.msgpack.Decoder(Union[protocol.Hello, Head, protocol.Bye])
    events_decoder = msgspec.msgpack.Decoder(list[protocol.Event])

    class LazyEvents:
        """A batch's events as msgpack bytes; decoded the first time they are iterated."""

        __slots__ = ("raw", "count", "decoded")

        def __init__(self, raw: msgspec.Raw) -> None:
            self.raw = raw
            self.decoded = None
            data = memoryview(raw)
            marker = data[0]
            if 0x90 <= marker <= 0x9F:
                self.count = marker & 0x0F
            elif marker == 0xDC:
                self.count = int.from_bytes(data[1:3], "big")
            elif marker == 0xDD:
                self.count = int.from_bytes(data[1:5], "big")
            else:
                raise msgspec.ValidationError("Expected `array` at `$.events`")

        def __len__(self) -> int:
            return self.count

        def __iter__(self):
            if self.decoded is None:
                self.decoded = events_decoder.decode(self.raw)
            return iter(self.decoded)

    class Decoder:
        def decode(self, body: bytes):
            message = head_decoder.decode(body)
            if isinstance(message, Head):
                return protocol.Batch(seq=message.seq, events=LazyEvents(message.events),
                                      dropped=message.dropped)
            return message

    protocol.client_message_decoder = Decoder()


def main() -> int:
    changes = [c for c in sys.argv[1].split(",") if c]
    unknown = set(changes) - set(CHANGES)
    if unknown:
        sys.exit(f"unknown change(s) {sorted(unknown)}; choose from {CHANGES}")
    if "no-id-regex" in changes:
        relax_id_patterns()
    if "decode-in-writer" in changes:
        decode_in_writer()
    from traceforge_daemon.cli import main as daemon_main

    print(f"whatif_daemon: running with {changes}", file=sys.stderr, flush=True)
    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
