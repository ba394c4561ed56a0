"""Reading a request into its route's Struct (``schemas``): every bad value is a 400 that
names the parameter and says what it must be.

The query string is checked before any value: a parameter the route does not know is
refused (a misspelt filter would otherwise be silently ignored), and so is one given
twice. An empty value (``?run_id=``) means "not given". There is no ``token``
parameter: a token in a URL would end up in logs and history (``guard``). Each value
is then read as its field's type (whole numbers, numbers, booleans as
true/false/1/0/yes/no/on/off) and msgspec holds the whole to the Struct's constraints. When it refuses, the message is ours, worded from the failing
field's own constraint (``explain``), never msgspec's text.

A JSON body is strict JSON (no NaN, no lone surrogates, which could not be sent back),
at most ``MAX_BODY_BYTES`` and ``MAX_BODY_DEPTH`` levels deep.
"""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, NamedTuple, Optional, TypeVar

import msgspec
import msgspec.inspect as mi
from aiohttp import web

from .errors import ApiError, bad

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
MAX_BODY_BYTES = 1024 * 1024
MAX_BODY_DEPTH = 500
"""Deepest nesting of arrays and objects a body may have. Without a fixed limit the
answer would depend on the Python version's recursion limits (3.11 refuses ~1,000 levels
that 3.13 accepts)."""



class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of what a route reads from a request: its parameters, or its JSON body."""

    def check(self) -> None:
        """Rules across fields, once each has passed its own; raise ``bad`` to refuse."""


S = TypeVar("S", bound=Input)


class Field(NamedTuple):
    """One field of a request Struct, unwrapped for reading and for wording its errors."""

    name: str
    annotation: Any
    kind: mi.Type
    """The field's type with Optional and Annotated taken off: IntType, StrType, ..."""
    means: Optional[str]
    """``Meta(extra={"means": ...})``: what a value must be, in words."""
    description: Optional[str]
    required: bool


def unwrap(kind: mi.Type) -> tuple[mi.Type, Optional[str], Optional[str]]:
    """(the type without Optional and Metadata, its "means", its description); outer
    annotations win over inner ones, as a field's description over its type's."""
    means = description = None
    while True:
        if isinstance(kind, mi.Metadata):
            means = means or (kind.extra or {}).get("means")
            description = description or (kind.extra_json_schema or {}).get("description")
            kind = kind.type
        elif isinstance(kind, mi.UnionType):
            others = [t for t in kind.types if not isinstance(t, mi.NoneType)]
            if len(others) != 1:
                return kind, means, description
            kind = others[0]
        else:
            return kind, means, description


@functools.lru_cache(maxsize=None)
def fields(cls: type) -> dict[str, Field]:
    hints = typing.get_type_hints(cls, include_extras=True)
    found = {}
    for info in mi.type_info(cls).fields:
        kind, means, description = unwrap(info.type)
        found[info.encode_name] = Field(info.encode_name, hints[info.name], kind, means,
                                        description, info.required)
    return found


def parse_query(request: web.Request, cls: type[S]) -> S:
    """The route's parameters: its path values and its query string, as ``cls``."""
    known = fields(cls)
    given = {name: read_text(known[name], value)
             for name, value in request.match_info.items() if name in known}
    query = request.query
    for name in query:
        if name not in known or name in given:
            names = ", ".join(sorted(set(known) - set(request.match_info))) or "none"
            raise bad(name, f"is not known here; known parameters: {names}")
        if len(query.getall(name)) > 1:
            raise bad(name, "is given more than once; give it once")
    texts = dict(request.match_info)
    for name, value in query.items():
        if value != "":
            given[name] = read_text(known[name], value)
            texts[name] = value
    return validate(cls, given, texts)


async def parse_body(request: web.Request, cls: type[S]) -> S:
    """The request's JSON body as ``cls``: a 413 past MAX_BODY_BYTES, else a 400 unless
    it is a JSON object whose fields pass ``cls``'s constraints."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is over {MAX_BODY_BYTES} bytes; send less")
    known = fields(cls)
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw or b"null")
    except (msgspec.DecodeError, RecursionError):
        shape = ", ".join(f'"{name}": ...' for name in known)
        raise ApiError(400, f"the body must be JSON: {{{shape}}}") from None
    if deeper_than(body, MAX_BODY_DEPTH):
        raise ApiError(400, f"the body's JSON is nested deeper than {MAX_BODY_DEPTH} levels")
    if not isinstance(body, dict):
        required = [f"'{f.name}'" for f in known.values() if f.required]
        optional = [f"'{f.name}'" for f in known.values() if not f.required]
        raise ApiError(400, f"the body must be a JSON object with {' and '.join(required)}"
                       + (f" (and optionally {' and '.join(optional)})" if optional else ""))
    unknown = set(body) - set(known)
    if unknown:
        raise bad(min(unknown), f"is not known here; known fields: {', '.join(known)}")
    return validate(cls, body)


def read_text(field: Field, text: str) -> Any:
    """A query value as its field's type; a value that does not read is refused here,
    one that reads but breaks a constraint is left to ``validate``."""
    kind = field.kind
    if isinstance(kind, mi.BoolType):
        lowered = text.strip().lower()
        if lowered in TRUE or lowered in FALSE:
            return lowered in TRUE
        raise bad(field.name, explain(field, text))
    if isinstance(kind, mi.IntType):
        try:
            return int(text.strip())
        except ValueError:
            raise bad(field.name, explain(field, text)) from None
    if isinstance(kind, mi.FloatType):
        try:
            return float(text.strip())
        except ValueError:
            return math.nan  # refused by the bounds, with the text shown as given
    return text


def validate(cls: type[S], values: dict, texts: Optional[dict[str, str]] = None) -> S:
    """``values`` as ``cls``, held to its constraints; a refusal names the first field
    that breaks one, in our words, showing the value as sent (``texts``, for values read
    from text)."""
    try:
        result = msgspec.convert(values, cls)
    except msgspec.ValidationError:
        known = fields(cls)
        for name, value in values.items():
            try:
                msgspec.convert(value, known[name].annotation)
            except msgspec.ValidationError:
                raise bad(name, explain(known[name], value, (texts or {}).get(name))) from None
        for field in known.values():
            if field.required and field.name not in values:
                raise bad(field.name, f"is required: give {field.means or field.description}")
        raise  # every field passes alone; a Struct rule that msgspec checks: our bug
    result.check()
    return result


def explain(field: Field, value: Any, text: Optional[str] = None) -> str:
    """What is wrong with ``value`` (sent as ``text``) for ``field``, from the field's
    constraint."""
    kind, shown = field.kind, _shown(value if text is None else text)
    if isinstance(kind, mi.BoolType):
        return f"must be true or false; got {shown}"
    if isinstance(kind, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number; got {shown}"
        return f"must be {_bounds(kind)}; got {value}"
    if isinstance(kind, mi.FloatType):
        return f"must be {field.means or 'a number'} {_bounds(kind)}; got {shown}"
    if isinstance(kind, mi.LiteralType):
        return f"must be one of {', '.join(map(str, kind.values))}; got {shown}"
    if isinstance(kind, mi.StrType) and isinstance(value, str):
        if kind.max_length is not None and len(value) > kind.max_length:
            return f"is longer than {kind.max_length} characters"
        if kind.min_length is not None and len(value) < kind.min_length:
            return f"is shorter than {kind.min_length} characters"
    return f"must be {field.means or field.description or 'valid'}; got {shown}"


def _bounds(kind: mi.IntType | mi.FloatType) -> str:
    if kind.ge is not None and kind.le is not None:
        return f"between {kind.ge:g} and {kind.le:g}" if isinstance(kind, mi.FloatType) \
            else f"between {kind.ge} and {kind.le}"
    if kind.ge is not None:
        return f"at least {kind.ge}"
    return f"at most {kind.le}" if kind.le is not None else "a number"


def _shown(value: Any) -> str:
    return repr(value[:80]) if isinstance(value, str) else repr(value)[:80]


def deeper_than(value: object, limit: int) -> bool:
    """True if arrays and objects in ``value`` nest more than ``limit`` deep (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit and children:
            return True
        pending.extend((child, depth + 1) for child in children
                       if isinstance(child, (dict, list)))
    return False
