"""Finding a map that holds the same key twice, anywhere in a frame.

msgpack allows a map to repeat a key and msgspec, like most decoders, keeps the last copy
without a word (msgspec/msgspec#648), so `{"tokens_input": 5, "tokens_input": 9}` would be
stored as 9 by the daemon and as 5 by a first-wins reader. protocol.md section 5.2 forbids
repeats in every map of a frame, and the daemon refuses them (``wire.decode_client_frame``).

The check is cheap for the frames the reference encoder writes (the Python client's): a
decoded message encodes back to exactly the bytes received only if they were the reference
encoding, which has one key per Struct field; that costs about 0.2 µs per event, half a
decode. Other encoders' frames are walked map by map with msgspec doing the work (``Raw``
values, and a batch's events in two decodes of the whole array), about 2 µs per event.
Two keys are the same key when their values are: "a" as a fixstr and as a str 8 are one
key, 1 and 1.0 are two.
"""

from __future__ import annotations

from typing import Any, Optional

import msgspec
from msgspec import Raw

_map_of_raw = msgspec.msgpack.Decoder(dict[str, Raw])
_list_of_raw = msgspec.msgpack.Decoder(list[Raw])
_any = msgspec.msgpack.Decoder(Any)
_canonical = msgspec.msgpack.Encoder().encode


class Repeat(msgspec.Struct, frozen=True):
    """A key found twice in the map at ``path`` (``$`` is the frame's top-level map)."""

    path: str
    key: Any


def _is_map(first: int) -> bool:
    return 0x80 <= first <= 0x8F or first == 0xDE or first == 0xDF


def _is_array(first: int) -> bool:
    return 0x90 <= first <= 0x9F or first == 0xDC or first == 0xDD


def _map_header(view: memoryview) -> tuple[int, int]:
    """(entries, header bytes) of the map at the start of ``view``."""
    first = view[0]
    if first <= 0x8F:
        return first & 0x0F, 1
    if first == 0xDE:
        return int.from_bytes(view[1:3], "big"), 3
    return int.from_bytes(view[1:5], "big"), 5


def _pairs(view: memoryview) -> list:
    """The map's keys and values in wire order, as Raw: a map of n entries is laid out
    exactly like an array of 2n items, so swapping the header lets msgspec split it."""
    count, header = _map_header(view)
    items = 2 * count
    if items <= 15:
        array = bytes([0x90 | items])
    elif items <= 0xFFFF:
        array = b"\xdc" + items.to_bytes(2, "big")
    else:
        array = b"\xdd" + items.to_bytes(4, "big")
    return _list_of_raw.decode(array + view[header:])


def _first_repeat(pairs: list) -> tuple[Optional[Any], bool]:
    """(key, True) for the first key that appears a second time in ``pairs``, else
    (None, False). Keys are compared by the reference encoding of their value."""
    seen = set()
    for raw in pairs[0::2]:
        key = _any.decode(raw)
        identity = _canonical(key)
        if identity in seen:
            return key, True
        seen.add(identity)
    return None, False


def find_repeat(body: bytes, message: msgspec.Struct,
                scalars: dict[type, frozenset]) -> Optional[Repeat]:
    """The first repeated key in the frame ``body``, already decoded as ``message``; None
    if there is none. ``scalars`` names, per message or event class, the fields that hold
    a single value once decoding has succeeded: their values need no look inside."""
    if _canonical(message) == body:
        return None
    return _walk(memoryview(body), "$", message, scalars)


_list_of_maps = msgspec.msgpack.Decoder(list[dict[str, Raw]])


def _walk_events(raw: Raw, events: list, scalars: dict[type, frozenset]) -> Optional[Repeat]:
    maps = _list_of_maps.decode(raw)
    for index, (event, entries, item) in enumerate(zip(events, maps, _list_of_raw.decode(raw))):
        view = memoryview(item)
        first = view[0]  # the map's header, inlined: this loop runs once per event
        count = first & 0x0F if first <= 0x8F else view[1] << 8 | view[2] if first == 0xDE else -1
        if len(entries) != count or not entries.keys() <= scalars[type(event)]:
            found = _walk(view, f"$.events[{index}]", event, scalars)
            if found:
                return found
    return None


def _walk(view: memoryview, path: str, decoded: Any, scalars: dict[type, frozenset]
          ) -> Optional[Repeat]:
    first = view[0]
    if _is_array(first):
        elements = decoded if isinstance(decoded, list) else None
        for index, item in enumerate(_list_of_raw.decode(view)):
            inner = memoryview(item)
            if _is_map(inner[0]) or _is_array(inner[0]):
                found = _walk(inner, f"{path}[{index}]",
                              elements[index] if elements else None, scalars)
                if found:
                    return found
        return None
    if not _is_map(first):
        return None
    count, _ = _map_header(view)
    try:
        entries = _map_of_raw.decode(view)
    except msgspec.ValidationError:  # a key that is not a str: only under unknown keys
        pairs = _pairs(view)
        key, repeated = _first_repeat(pairs)
        if repeated:
            return Repeat(path, key)
        values = [(f"{path}[{key!r}]", raw) for key, raw in
                  zip(map(_any.decode, pairs[0::2]), pairs[1::2])]
        return _walk_values(values, None, scalars)
    if len(entries) != count:
        key, _ = _first_repeat(_pairs(view))
        return Repeat(path, key)
    inside = entries.keys() - scalars.get(type(decoded), frozenset())
    if not inside:  # the common case for an event: every key a known single-value field
        return None
    if path == "$" and "events" in inside and getattr(decoded, "events", None):
        # A batch's events, the bulk of most frames, are checked together: two decodes of
        # the whole array instead of one per event.
        found = _walk_events(entries["events"], decoded.events, scalars)
        if found:
            return found
        inside.discard("events")
    values = [(f"{path}.{key}", entries[key]) for key in entries if key in inside]
    return _walk_values(values, decoded, scalars)


def _walk_values(values: list, decoded: Any, scalars: dict[type, frozenset]
                 ) -> Optional[Repeat]:
    for path, raw in values:
        inner = memoryview(raw)
        if _is_map(inner[0]) or _is_array(inner[0]):
            field = path.rpartition(".")[2]
            child = getattr(decoded, field, None) if decoded is not None else None
            found = _walk(inner, path, child, scalars)
            if found:
                return found
    return None


class _RepeatedKey(Exception):
    pass


def _no_repeats(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        seen: set = set()
        raise _RepeatedKey(next(key for key in keys if key in seen or seen.add(key)))
    return dict(pairs)


def find_json_repeat(body: bytes) -> Optional[str]:
    """A key found twice in one object of a JSON body, or None. JSON bodies come through
    HTTP ingest, far from the hot path, so the standard library's parser walks them."""
    import json

    try:
        json.loads(body, object_pairs_hook=_no_repeats)
    except _RepeatedKey as repeat:
        return str(repeat.args[0])
    return None
