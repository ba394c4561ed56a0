"""Checking request parameters: every bad value becomes a 400 that names the parameter.

Handlers read their query string through ``Query``, which also rejects parameters the
route does not know (a misspelt filter would otherwise be silently ignored) and
parameters given twice.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

from aiohttp import web

from traceforge_protocol import ids

from ..storage import rows
from .errors import bad

MAX_INT = 2**53  # beyond this SQLite's 64-bit integers and JSON numbers disagree
MAX_TEXT = 512
ALWAYS_ALLOWED = frozenset({"token"})  # read by the token guard, not by handlers

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def check_run_id(value: str, name: str = "run_id") -> str:
    if ids.is_run_id(value, legacy=True):
        return value
    raise bad(name, f"must be a run id, 32 lowercase hex characters; got {value[:80]!r}")


def check_step_id(value: str, name: str = "step_id") -> str:
    if ids.is_step_id(value, legacy=True):
        return value
    raise bad(name, f"must be a step id, 16 lowercase hex characters; got {value[:80]!r}")


class Query:
    """Typed access to a request's query string, for one route's known parameters."""

    def __init__(self, request: web.Request, allowed: Iterable[str]) -> None:
        self.values = request.query
        allowed = set(allowed) | ALWAYS_ALLOWED
        for name in self.values:
            if name not in allowed:
                known = ", ".join(sorted(allowed - ALWAYS_ALLOWED)) or "none"
                raise bad(name, f"is not known here; known parameters: {known}")
            if len(self.values.getall(name)) > 1:
                raise bad(name, "is given more than once; give it once")

    def text(self, name: str, max_length: int = MAX_TEXT) -> Optional[str]:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if len(value) > max_length:
            raise bad(name, f"is longer than {max_length} characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> Optional[str]:
        value = self.text(name)
        if value is not None and value not in choices:
            raise bad(name, f"must be one of {', '.join(choices)}; got {value[:80]!r}")
        return value

    def integer(self, name: str, default: Optional[int] = None, minimum: int = 0,
                maximum: int = MAX_INT) -> Optional[int]:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise bad(name, f"must be a whole number; got {value[:80]!r}") from None
        if not minimum <= number <= maximum:
            raise bad(name, f"must be between {minimum} and {maximum}; got {number}")
        return number

    def number(self, name: str) -> Optional[float]:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or abs(number) > 1e15:
            raise bad(name, f"must be a number of seconds since the epoch; got {value[:80]!r}")
        return number

    def boolean(self, name: str, default: Optional[bool] = None) -> Optional[bool]:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise bad(name, f"must be true or false; got {value[:80]!r}")

    def run_id(self, name: str = "run_id") -> Optional[str]:
        value = self.text(name, max_length=64)
        return None if value is None else check_run_id(value, name)


def decode_cursor(query: Query, name: str = "cursor") -> Optional[tuple[float, int]]:
    """(started_at, rowid) from a cursor this API returned as ``next_cursor``."""
    value = query.text(name, max_length=200)
    if value is None:
        return None
    try:
        return rows.decode_cursor(value)
    except ValueError:
        raise bad(name, "is not a cursor this API returned; pass next_cursor as given") from None
