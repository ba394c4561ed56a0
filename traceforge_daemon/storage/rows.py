"""The API's shapes for stored runs and steps: which columns, and how rows become JSON.

Payload columns (inputs, outputs, metadata) are JSON text in the database and are
served as JSON values; text that does not parse is served inside a marker object,
``{"_traceforge_invalid_json": true, "text": "<as sent>"}``, so it cannot pass for a JSON
string. A step is *unpriced* when it used tokens and has no cost (NULL): its ``cost_usd``
is served as None and counted in ``unpriced_steps``, never reported as 0. A step that
used no tokens costs nothing, whatever cost it sent: NULL is served as 0.0.
"""

from __future__ import annotations

import base64
import math
import sqlite3
from typing import Any, Iterable, Optional

import msgspec

STEP_SUMMARY_COLUMNS = (
    "step_id", "parent_step_id", "step_name", "model", "status", "started_at", "ended_at",
    "latency_ms", "tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write",
    "cost_usd", "error_type", "error",
)
"""What a list of many steps carries: enough for a waterfall, no payloads."""

STEP_PAYLOAD_COLUMNS = ("input_data", "output_data", "metadata")
STEP_FULL_COLUMNS = (
    ("run_id",) + STEP_SUMMARY_COLUMNS + STEP_PAYLOAD_COLUMNS + ("traceback", "pid", "host")
)

RUN_COLUMNS = (
    "run_id", "run_name", "started_at", "ended_at", "status", "metadata", "error", "pid",
    "host", "replay_of_run_id", "replay_of_step_id",
)

UNPRICED_SQL = (
    "(cost_usd IS NULL AND (tokens_input > 0 OR tokens_output > 0 "
    "OR tokens_cache_read > 0 OR tokens_cache_write > 0))"
)
"""The rule for an unpriced step, as SQL over ``steps``: no cost, and some tokens used.
It is written here and in ``is_unpriced`` (the same rule over a row already read), and
nowhere else. A step with no tokens and no cost, a tool call sent with the protocol's
default ``cost_usd: nil``, is not unpriced: it cost nothing."""


def is_unpriced(step: dict) -> bool:
    return step["cost_usd"] is None and (
        step["tokens_input"] > 0 or step["tokens_output"] > 0
        or step["tokens_cache_read"] > 0 or step["tokens_cache_write"] > 0
    )


def _served_cost(step: dict) -> None:
    """A NULL cost is served as None only for an unpriced step; else it is 0.0."""
    if "cost_usd" in step and step["cost_usd"] is None and not is_unpriced(step):
        step["cost_usd"] = 0.0


SUMMARY_ERROR_CHARS = 300
"""Step lists cut error messages to this length; the step detail has the whole text."""

_decoder = msgspec.json.Decoder()
encode = msgspec.json.Encoder().encode


def time_window(start_time: Optional[float], end_time: Optional[float],
                cursor: Optional[tuple[float, int]] = None) -> tuple[list[str], list]:
    """WHERE clauses (and their parameters) for a ``started_at`` range and the keyset cursor
    of a newest-first page: rows strictly after (started_at, rowid) in that order."""
    where: list[str] = []
    params: list = []
    if start_time is not None:
        where.append("started_at >= ?")
        params.append(start_time)
    if end_time is not None:
        where.append("started_at <= ?")
        params.append(end_time)
    if cursor is not None:
        where.append("started_at <= ? AND NOT (started_at = ? AND rowid >= ?)")
        params.extend([cursor[0], cursor[0], cursor[1]])
    return where, params


def encode_cursor(started_at: float, rowid: int) -> str:
    """An opaque page cursor: the keyset (started_at, rowid) of the last row returned."""
    text = f"{started_at!r}|{rowid!r}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


MAX_ROWID = 2**63 - 1


def decode_cursor(value: str) -> tuple[float, int]:
    """(started_at, rowid) from a cursor made by ``encode_cursor``; ValueError otherwise."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        started, rowid = text.split("|")
        result = float(started), int(rowid)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor") from None
    if not math.isfinite(result[0]) or abs(result[1]) > MAX_ROWID:
        raise ValueError("not a cursor")
    return result


def select_list(columns: Iterable[str], table: str = "") -> str:
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + column for column in columns)


INVALID_JSON_KEY = "_traceforge_invalid_json"
"""Marks a served payload whose stored text is not JSON: ``{INVALID_JSON_KEY: true,
"text": "<the text as sent>"}``. Keys beginning ``_traceforge_`` at the top of a payload
are TraceForge's markers (clients mark a truncated payload ``_traceforge_truncated``)."""


def decode_json(text: Optional[str]) -> Any:
    """A stored JSON payload as a value; None stays None, text that is not JSON comes back
    in the invalid-JSON marker, so it cannot be mistaken for a JSON string."""
    if text is None:
        return None
    try:
        return _decoder.decode(text)
    except msgspec.DecodeError:
        return {INVALID_JSON_KEY: True, "text": text}


def step_dict(columns: tuple[str, ...], row: tuple) -> dict:
    step = dict(zip(columns, row))
    for column in STEP_PAYLOAD_COLUMNS:
        if column in step:
            step[column] = decode_json(step[column])
    _served_cost(step)
    return step


def summary_dict(row: tuple) -> dict:
    step = dict(zip(STEP_SUMMARY_COLUMNS, row))
    _served_cost(step)
    error = step["error"]
    if error is not None and len(error) > SUMMARY_ERROR_CHARS:
        step["error"] = error[:SUMMARY_ERROR_CHARS] + "…"
    return step


def run_dict(row: tuple) -> dict:
    run = dict(zip(RUN_COLUMNS, row))
    run["metadata"] = decode_json(run["metadata"])
    ended = run["ended_at"]
    run["duration_ms"] = None if ended is None else round((ended - run["started_at"]) * 1000, 3)
    return run


def fetch_run(conn: sqlite3.Connection, run_id: str) -> Optional[dict]:
    row = conn.execute(
        f"SELECT {select_list(RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None else run_dict(row)


class Totals:
    """Running sums over a run's steps, in the shape every run summary carries."""

    __slots__ = ("steps", "running", "errors", "tokens_input", "tokens_output",
                 "cache_read", "cache_write", "cost", "priced", "unpriced")

    def __init__(self) -> None:
        self.steps = self.running = self.errors = 0
        self.tokens_input = self.tokens_output = self.cache_read = self.cache_write = 0
        self.cost = 0.0
        self.priced = self.unpriced = 0

    def add(self, step: dict) -> None:
        self.steps += 1
        status = step["status"]
        if status == "running":
            self.running += 1
        elif status == "error":
            self.errors += 1
        self.tokens_input += step["tokens_input"]
        self.tokens_output += step["tokens_output"]
        self.cache_read += step["tokens_cache_read"]
        self.cache_write += step["tokens_cache_write"]
        if is_unpriced(step):
            self.unpriced += 1
        else:
            self.priced += 1
            self.cost += step["cost_usd"] or 0.0

    def as_dict(self) -> dict:
        return totals_dict(
            self.steps, self.running, self.errors, self.tokens_input, self.tokens_output,
            self.cache_read, self.cache_write, self.cost, self.priced, self.unpriced,
        )


def totals_dict(steps: int, running: int, errors: int, tokens_input: int, tokens_output: int,
                cache_read: int, cache_write: int, cost: float, priced: int,
                unpriced: int) -> dict:
    """Totals over steps, in the shape every run summary carries."""
    return {
        "step_count": steps,
        "running_steps": running,
        "error_count": errors,
        "tokens_input": tokens_input,
        "tokens_output": tokens_output,
        "tokens_cache_read": cache_read,
        "tokens_cache_write": cache_write,
        "total_tokens": tokens_input + tokens_output,
        "cost_usd": cost_total(cost, priced, unpriced),
        "unpriced_steps": unpriced,
    }


def cost_total(cost: float, priced: int, unpriced: int) -> Optional[float]:
    """The cost of a set of steps: the sum over the priced ones, or None when none is
    priced and some are unpriced, since a sum of nothing known is not $0."""
    return None if unpriced and not priced else round(cost, 10)


def empty_totals() -> dict:
    return Totals().as_dict()
