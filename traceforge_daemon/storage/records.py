"""How protocol events become stored rows: the one mapping from the wire to the tables.

The writer stores these rows, and the live event stream describes a committed event
with the same values, so a step shown live and the same step read back later can never
disagree. Times arrive as integer nanoseconds and are stored as float seconds, the
shape TraceForge's schema has always had (see ``schema.py``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from traceforge_protocol import wire

from . import rows

STEP_START_COLUMNS = (
    "step_id", "run_id", "parent_step_id", "step_name", "model", "input_data", "metadata",
    "started_at", "pid", "host",
)
STEP_END_COLUMNS = (
    "step_id", "run_id", "parent_step_id", "step_name", "model", "input_data", "output_data",
    "tokens_input", "tokens_output", "tokens_cache_read", "tokens_cache_write", "cost_usd",
    "latency_ms", "started_at", "ended_at", "status", "error", "error_type", "traceback",
    "metadata", "pid", "host",
)
RUN_START_COLUMNS = ("run_id", "run_name", "started_at", "metadata", "pid", "host")
RUN_END_COLUMNS = (
    "run_id", "run_name", "started_at", "ended_at", "status", "metadata", "error", "pid", "host",
)


def error_text(error_type: Optional[str], message: Optional[str]) -> str:
    """The one-line error string, "Type: message", from whichever parts exist."""
    if error_type and message:
        return f"{error_type}: {message}"
    return error_type or message or "error"


def step_start_row(e: wire.StepStart, pid: int, host: str) -> tuple:
    return (e.step_id, e.run_id, e.parent_step_id, e.name, e.model, e.input_json,
            e.metadata_json, e.start_ns / 1e9, pid, host)


def step_end_row(e: wire.StepEnd, start: Optional[wire.StepStart], pid: int, host: str) -> tuple:
    """The row of an ended step. ``start`` is its start event when the same transaction
    holds it: then the row is written once, with the start's input (and its model and
    metadata where the end has none)."""
    model, metadata = e.model, e.metadata_json
    if start is not None:
        if model is None:
            model = start.model
        if metadata is None:
            metadata = start.metadata_json
    return (
        e.step_id, e.run_id, e.parent_step_id, e.name, model,
        start.input_json if start is not None else None, e.output_json,
        e.tokens_input, e.tokens_output, e.tokens_cache_read, e.tokens_cache_write,
        e.cost_usd, (e.end_ns - e.start_ns) / 1e6, e.start_ns / 1e9, e.end_ns / 1e9, e.status,
        error_text(e.error_type, e.error_message) if e.status == "error" else None,
        e.error_type, e.traceback, metadata, pid, host,
    )


def run_start_row(e: wire.RunStart, pid: int, host: str) -> tuple:
    return (e.run_id, e.name, e.start_ns / 1e9, e.metadata_json, pid, host)


def run_end_row(e: wire.RunEnd, pid: int, host: str) -> tuple:
    return (e.run_id, e.name, e.start_ns / 1e9, e.end_ns / 1e9, e.status, e.metadata_json,
            e.error, pid, host)


_SUMMARY_OF_END = tuple(STEP_END_COLUMNS.index(column) for column in rows.STEP_SUMMARY_COLUMNS)
_SUMMARY_OF_START = {
    column: STEP_START_COLUMNS.index(column)
    for column in rows.STEP_SUMMARY_COLUMNS if column in STEP_START_COLUMNS
}


def live_summary(event) -> Optional[tuple[str, dict]]:
    """(kind, summary) of a committed event, for the live stream: an ended step in the
    shape the run detail lists it (``rows.STEP_SUMMARY_COLUMNS`` plus ``run_id``), a started
    one with only what a start knows (ids, parent, name, model, start, ``running``), a run
    with its name, times and status; for a StatusChange, the ids and the new status
    (``step_incomplete``, ``run_incomplete``). None for a kind this module does not know."""
    kind = type(event)
    if kind is wire.StepEnd:
        row = step_end_row(event, None, 0, "")
        summary = rows.summary_dict(tuple(row[index] for index in _SUMMARY_OF_END))
        summary["run_id"] = event.run_id
        return "step_end", summary
    if kind is wire.StepStart:
        # A start carries what a start knows (id, parent, name, model, start): its end,
        # tokens, cost and error come with its step_end. Half the bytes of the whole
        # summary, and a page watching runs gets one start and one end per step.
        row = step_start_row(event, 0, "")
        summary = {column: row[index] for column, index in _SUMMARY_OF_START.items()}
        summary.update(status="running", run_id=event.run_id)
        return "step_start", summary
    if kind is wire.RunStart:
        run = dict(zip(RUN_START_COLUMNS, run_start_row(event, 0, "")))
        del run["metadata"], run["pid"], run["host"]
        run["status"] = "running"
        return "run_start", run
    if kind is wire.RunEnd:
        run = dict(zip(RUN_END_COLUMNS, run_end_row(event, 0, "")))
        del run["metadata"], run["pid"], run["host"]
        run["duration_ms"] = round((run["ended_at"] - run["started_at"]) * 1000, 3)
        return "run_end", run
    if kind is StatusChange:
        if event.step_id is None:
            return f"run_{event.status}", {"run_id": event.run_id, "status": event.status}
        return f"step_{event.status}", {"run_id": event.run_id, "step_id": event.step_id,
                                         "status": event.status}
    return None


class StatusChange(NamedTuple):
    """A stored row whose status the daemon changed itself (not a protocol event): a step
    (``step_id`` set) or a run that became ``incomplete``."""

    run_id: str
    step_id: Optional[str]
    status: str


class Changed(NamedTuple):
    """Rows the writer changed on its own, as a commit listener sees them: like a batch,
    with ``events``, but from no connection."""

    events: list
    origin: None = None
