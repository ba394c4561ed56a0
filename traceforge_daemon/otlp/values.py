"""Attribute values and ids between Python and OTLP, and OTLP/JSON's own rules.

OTLP/JSON is the proto3 JSON mapping of the OTLP messages with one exception: trace and
span ids are hex, not base64 (opentelemetry-proto ``docs/specification.md``, "JSON
Protobuf Encoding"). So the mapping itself is protobuf's ``json_format`` with integer
enums, and only the id fields are rewritten, on the way out and on the way in.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Iterable, Mapping

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.common.v1 import common_pb2

AnyValue = common_pb2.AnyValue
KeyValue = common_pb2.KeyValue

ID_FIELDS = ("traceId", "spanId", "parentSpanId")
ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def any_value(value: Any) -> AnyValue:
    """A Python value as an AnyValue: bool, int, float and str as themselves, lists as
    arrays, dicts as key-value lists, anything else as its text."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -2**63 <= value < 2**63:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, Mapping):
        return AnyValue(kvlist_value=common_pb2.KeyValueList(values=key_values(value.items())))
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def key_values(items: Iterable[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=str(key), value=any_value(value)) for key, value in items]


def python_value(value: AnyValue) -> Any:
    """An AnyValue as a JSON-able Python value (bytes become base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "array_value":
        return [python_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def attributes_dict(items: Iterable[KeyValue]) -> dict[str, Any]:
    """Key-values as a dict; a key given twice keeps its last value."""
    return {item.key: python_value(item.value) for item in items}


# ---- OTLP/JSON ----

def to_json_dict(message: Message) -> dict:
    """A TracesData or ExportTraceServiceRequest as OTLP/JSON: lowerCamelCase keys,
    integer enums, 64-bit integers as decimal strings, hex ids, default values left out."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    for span in _spans(data):
        for field in ID_FIELDS:
            if field in span:
                span[field] = base64.b64decode(span[field]).hex()
        for link in span.get("links", ()):
            for field in ("traceId", "spanId"):
                if field in link:
                    link[field] = base64.b64decode(link[field]).hex()
    return data


def from_json_dict(data: Any, message: Message) -> Message:
    """Fill ``message`` from OTLP/JSON, ignoring unknown fields as receivers must.
    Raises ``json_format.ParseError`` (or ValueError) for anything else malformed. An id
    that is not hex of the right length becomes empty, which the span's reader rejects."""
    if not isinstance(data, dict):
        raise ValueError("an OTLP/JSON request is a JSON object")
    for span in _spans(data):
        for field in ID_FIELDS:
            if field in span:
                span[field] = _id_to_base64(span[field], ID_BYTES[field])
        for link in span.get("links", ()) if isinstance(span.get("links"), list) else ():
            if isinstance(link, dict):
                for field in ("traceId", "spanId"):
                    if field in link:
                        link[field] = _id_to_base64(link[field], ID_BYTES[field])
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message


def _id_to_base64(value: Any, size: int) -> str:
    if not isinstance(value, str) or value == "":
        return ""
    if len(value) == size * 2:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            return ""
    try:  # some producers send proto3's base64; tolerate it when it has the right size
        if len(base64.b64decode(value, validate=True)) == size:
            return value
    except (binascii.Error, ValueError):
        pass
    return ""


def _spans(data: dict) -> Iterable[dict]:
    """Every span object in a TracesData-shaped dict, skipping what is not shaped so."""
    for resource_spans in _list(data, "resourceSpans"):
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                yield span


def _list(container: Any, key: str) -> list:
    value = container.get(key) if isinstance(container, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
