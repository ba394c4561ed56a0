"""What each API route accepts: one msgspec Struct per route's parameters or body.

Every limit, pattern and choice a request is held to is written here once, as a
``msgspec.Meta`` constraint. ``params`` parses requests into these Structs and words
their errors from the same constraints, and ``openapi`` documents them from the same
Structs, so what /openapi.json promises is what the handlers enforce.

``Meta(extra={"means": ...})`` says in words what a value must be ("a run id, ..."), for
error messages; ``description`` and ``examples`` go into the description.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from msgspec import Meta

from traceforge_protocol import ids

from ..storage import rows
from ..storage.runs_query import RUN_STATUSES, RunFilter
from ..storage.stats_query import StatsFilter
from ..storage.steps_query import STEP_STATUSES, StepFilter
from .errors import bad
from .params import Input

MAX_INT = 2**53
"""Largest whole number a parameter takes: beyond it SQLite's 64-bit integers and JSON
numbers disagree."""
MAX_TEXT = 512
MAX_EPOCH = 1e15
MAX_CURSOR = 200
MAX_RUNS_PAGE = 500
MAX_SEARCH_PAGE = 1000
MAX_STATS_NAMES = 1000
KEEPALIVE_SECONDS = 15
MAX_KEEPALIVE_SECONDS = 300

RunStatus = Literal[RUN_STATUSES]
StepStatus = Literal[STEP_STATUSES]
ExportFormat = Literal["otlp", "flat"]


def _either(*patterns: str) -> str:
    """One anchored pattern matching any of ``patterns`` (each anchored itself)."""
    return "^(?:" + "|".join(p.removeprefix("^").removesuffix("$") for p in patterns) + ")$"


RunId = Annotated[str, Meta(
    pattern=_either(ids.RUN_ID_PATTERN, ids.LEGACY_ID_PATTERN),
    examples=["0190f5a2b3c4d5e6f708192a3b4c5d6e"],
    extra={"means": "a run id, 32 lowercase hex characters "
                    "(or a uuid, for a run from an older database)"},
)]
StepId = Annotated[str, Meta(
    pattern=_either(ids.STEP_ID_PATTERN, ids.LEGACY_ID_PATTERN),
    examples=["9f3c2a1b00000001"],
    extra={"means": "a step id, 16 lowercase hex characters "
                    "(or a uuid, for a step from an older database)"},
)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Epoch = Annotated[float, Meta(
    ge=-MAX_EPOCH, le=MAX_EPOCH, examples=[1714000000.5],
    extra={"means": "a number of seconds since the epoch"},
)]
Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
Cursor = Annotated[str, Meta(max_length=MAX_CURSOR, description="next_cursor of the previous page")]


def keyset(cursor: Optional[str], name: str = "cursor") -> Optional[tuple[float, int]]:
    """(started_at, rowid) from a cursor this API returned as ``next_cursor``."""
    if cursor is None:
        return None
    try:
        return rows.decode_cursor(cursor)
    except ValueError:
        raise bad(name, "is not a cursor this API returned; pass next_cursor as given") from None


class Params(Input):
    """Base of every route's parameters: its path and query values, each described."""


class NoParams(Params):
    """A route that takes no parameters."""


class RunParams(Params):
    run_id: Annotated[RunId, Meta(description="A run id: 32 lowercase hex characters")]


class StepParams(Params):
    step_id: Annotated[StepId, Meta(description="A step id: 16 lowercase hex characters")]


class RunSelection(Params):
    """The filters that pick runs: the run list's, and the export's."""

    name: Annotated[Optional[Text], Meta(description="Only runs with exactly this name")] = None
    q: Annotated[Optional[Text], Meta(description="Only runs whose name contains this text")] = (
        None)
    status: Annotated[Optional[RunStatus], Meta(description="Only runs in this state")] = None
    start_time: Annotated[Optional[Epoch], Meta(
        description="Only runs started at or after this time")] = None
    end_time: Annotated[Optional[Epoch], Meta(
        description="Only runs started at or before this time")] = None

    def run_filter(self, **paging) -> RunFilter:
        return RunFilter(name=self.name, name_contains=self.q, status=self.status,
                         start_time=self.start_time, end_time=self.end_time, **paging)


class RunListParams(RunSelection):
    replay_of: Annotated[Optional[RunId], Meta(
        description="Only replays of steps of this run")] = None
    limit: Annotated[int, Meta(ge=1, le=MAX_RUNS_PAGE, description="Page size")] = 50
    offset: Annotated[Count, Meta(description="Rows to skip (instead of a cursor)")] = 0
    cursor: Optional[Cursor] = None

    def check(self) -> None:
        if self.cursor is not None and self.offset:
            raise bad("offset", "cannot be combined with 'cursor'; use one way of paging")

    def run_filter(self) -> RunFilter:  # type: ignore[override]
        return super().run_filter(replay_of=self.replay_of, limit=self.limit,
                                  offset=self.offset, cursor=keyset(self.cursor))


_FORMAT = ("otlp: OTLP/JSON as OpenTelemetry's file exporter writes it, one TracesData per "
           "line, ended steps only; flat: TraceForge's own flat span per line (not OTLP)")
ExportFormatParam = Annotated[ExportFormat, Meta(description=_FORMAT)]


class RunExportParams(RunParams):
    format: ExportFormatParam = "otlp"


class ExportParams(RunSelection):
    format: ExportFormatParam = "otlp"


class RunDetailParams(RunParams):
    payloads: Annotated[bool, Meta(
        description="Include each step's input_data, output_data and metadata")] = False


class CompareParams(Params):
    run_id_a: Annotated[RunId, Meta(description="Run A: deltas are B minus A")]
    run_id_b: Annotated[RunId, Meta(description="Run B")]


class SearchParams(Params):
    run_id: Annotated[Optional[RunId], Meta(description="Only steps of this run")] = None
    step_name: Annotated[Optional[Text], Meta(
        description="Only steps with exactly this name")] = None
    has_error: Annotated[Optional[bool], Meta(
        description="Only failed (true) or not failed (false) steps")] = None
    status: Annotated[Optional[StepStatus], Meta(
        description="Only steps in this state (incomplete: its process went away without "
                    "ending it)")] = None
    min_tokens: Annotated[Optional[Count], Meta(
        description="Only steps with at least this many input plus output tokens")] = None
    start_time: Annotated[Optional[Epoch], Meta(
        description="Only steps started at or after this time")] = None
    end_time: Annotated[Optional[Epoch], Meta(
        description="Only steps started at or before this time")] = None
    limit: Annotated[int, Meta(ge=1, le=MAX_SEARCH_PAGE, description="Page size")] = 100
    cursor: Optional[Cursor] = None
    payloads: Annotated[bool, Meta(
        description="Include input_data, output_data and metadata")] = True

    def step_filter(self) -> StepFilter:
        return StepFilter(
            run_id=self.run_id, step_name=self.step_name, has_error=self.has_error,
            status=self.status,
            min_tokens=self.min_tokens, start_time=self.start_time, end_time=self.end_time,
            limit=self.limit, cursor=keyset(self.cursor), payloads=self.payloads,
        )


class PruneBody(Input):
    """What to delete; at least one of the two."""

    older_than_s: Annotated[Optional[Annotated[float, Meta(gt=0, le=MAX_EPOCH)]], Meta(
        description="Delete runs that started more than this many seconds ago (running ones "
        "excepted), their steps, and older client drop counts")] = None
    max_bytes: Annotated[Optional[Annotated[int, Meta(gt=0, le=MAX_INT)]], Meta(
        description="Then delete the oldest runs until the data takes at most this many "
        "bytes")] = None

    def check(self) -> None:
        if self.older_than_s is None and self.max_bytes is None:
            raise bad("older_than_s", "or 'max_bytes' is required: say what to delete")


class StatsParams(Params):
    run_id: Annotated[Optional[RunId], Meta(description="Only steps of this run")] = None
    step_name: Annotated[Optional[Text], Meta(description="Only this step name")] = None
    start_time: Annotated[Optional[Epoch], Meta(
        description="Only steps started at or after this time")] = None
    end_time: Annotated[Optional[Epoch], Meta(
        description="Only steps started at or before this time")] = None
    limit: Annotated[int, Meta(ge=1, le=MAX_STATS_NAMES,
                               description="Most frequent step names to report")] = 100

    def stats_filter(self) -> StatsFilter:
        return StatsFilter(run_id=self.run_id, step_name=self.step_name,
                           start_time=self.start_time, end_time=self.end_time, limit=self.limit)


class EventsParams(Params):
    run_id: Annotated[Optional[RunId], Meta(description="Only events of this run")] = None
    keepalive: Annotated[int, Meta(ge=1, le=MAX_KEEPALIVE_SECONDS,
                                   description="Seconds between keep-alive comments")] = (
        KEEPALIVE_SECONDS)


class ReplayBody(Input):
    """What to replay: a step, and optionally an input to use in place of its own."""

    step_id: Annotated[StepId, Meta(description="The step to replay")]
    override_input: Annotated[Any, Meta(
        description="The input to replay with; null or absent: the step's recorded input",
    )] = None
