"""What the API answers, as msgspec Structs: the source of /openapi.json's response schemas.

The reader processes build answers as dicts and encode them there (``storage.jobs``);
these Structs describe those shapes, they do not build them. They forbid unknown
fields, so the description says "nothing else": the fuzzer in tests/test_api_fuzz.py
checks every answer it provokes against them, and tests/test_api_docs.py converts real
answers into them, so a field added to an answer without being added here fails a test.
A field that only some answers carry is ``UNSET`` when absent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..storage.stats_query import PERCENTILES
from .schemas import RunStatus, StepStatus

Cost = Annotated[Optional[float], Meta(
    description="US dollars; null: unpriced (tokens used, no known price), never 0")]
Ids = list[str]


class Shape(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the answers' shapes."""


class Error(Shape):
    """Every error: the message says what was wrong and, where it can, what to do."""

    error: str
    status: int
    code: Union[str, UnsetType] = UNSET
    """On the ingest route: the socket protocol's error code (protocol.md section 10)."""
    retry_after_ms: Union[int, UnsetType] = UNSET
    """On a retryable ingest error: how long to wait before sending again."""


class IngestAnswer(Shape):
    """Events stored: every event of the request is committed."""

    accepted: int


class StepSummary(Shape):
    """A step as a list of many steps shows it: no payloads."""

    step_id: str
    parent_step_id: Optional[str]
    step_name: str
    model: Optional[str]
    status: StepStatus
    started_at: float
    ended_at: Optional[float]
    latency_ms: Optional[float]
    tokens_input: int
    tokens_output: int
    tokens_cache_read: int
    tokens_cache_write: int
    cost_usd: Cost
    error_type: Optional[str]
    error: Optional[str]


class TreeStep(StepSummary):
    """A step in its run's tree: depth, offset from the run's start and its children's ids;
    with payloads=true, also its input, output and metadata."""

    depth: int
    offset_ms: float
    children: Ids
    orphan: Annotated[bool, Meta(
        description="true: the step's parent is not in the run, so it is shown as a root",
    )] = False
    run_id: Union[str, UnsetType] = UNSET
    input_data: Any = UNSET
    output_data: Any = UNSET
    metadata: Any = UNSET


class Step(StepSummary):
    """A step found by search; with payloads=true, also input, output, metadata and where
    it ran."""

    run_id: str
    input_data: Any = UNSET
    output_data: Any = UNSET
    metadata: Any = UNSET
    traceback: Union[Optional[str], UnsetType] = UNSET
    pid: Union[Optional[int], UnsetType] = UNSET
    host: Union[Optional[str], UnsetType] = UNSET


class StepDetail(StepSummary):
    """One step with everything recorded about it, its children and its replays."""

    run_id: str
    input_data: Any
    output_data: Any
    metadata: Any
    traceback: Optional[str]
    pid: Optional[int]
    host: Optional[str]
    run_name: Optional[str]
    children: Ids
    replay_run_ids: Ids


class Run(Shape):
    """A run with totals over its steps."""

    run_id: str
    run_name: str
    started_at: float
    ended_at: Optional[float]
    duration_ms: Optional[float]
    status: RunStatus
    metadata: Any
    error: Optional[str]
    pid: Optional[int]
    host: Optional[str]
    replay_of_run_id: Optional[str]
    replay_of_step_id: Optional[str]
    step_count: int
    running_steps: int
    error_count: int
    tokens_input: int
    tokens_output: int
    tokens_cache_read: int
    tokens_cache_write: int
    total_tokens: int
    cost_usd: Annotated[Optional[float], Meta(
        description="Sum over the priced steps; null when no step is priced and some are not")]
    unpriced_steps: int
    partial: Annotated[bool, Meta(
        description="true: the run's start has not arrived; it is named after its first step",
    )] = False


class RunList(Shape):
    """A page of runs, newest first."""

    runs: list[Run]
    next_cursor: Annotated[Optional[str], Meta(description="Pass as cursor for the next page")]
    limit: int


class Timeline(Shape):
    start: float
    end: float
    duration_ms: float


class RunDetail(Shape):
    """The run, its steps in start order and the ids of its root steps."""

    run: Run
    steps: list[TreeStep]
    roots: Ids
    timeline: Timeline


class StepColumns(Shape):
    """A run's steps, one list per field, all of one length, in start order: step ``i``
    is the ``i``-th value of each list."""

    step_id: Ids
    parent: Annotated[list[int], Meta(
        description="Position of the step's parent in these lists; -1: a root")]
    name: Annotated[list[int], Meta(description="Position of the step's name in names")]
    model: Annotated[list[int], Meta(
        description="Position of the step's model in models; -1: no model")]
    status: Annotated[list[int], Meta(description="Position of the step's status in statuses")]
    offset_ms: Annotated[list[float], Meta(description="Start, in ms after timeline.start")]
    latency_ms: Annotated[list[Optional[float]], Meta(description="null: not ended")]
    tokens_input: list[int]
    tokens_output: list[int]
    tokens_cache_read: list[int]
    tokens_cache_write: list[int]
    cost_usd: Annotated[list[Optional[float]], Meta(
        description="US dollars; null: unpriced, never 0")]


class StepError(Shape):
    """The error of the step at ``index``, cut to 300 characters as step lists cut it."""

    index: int
    error_type: Optional[str]
    error: Optional[str]


class RunSteps(Shape):
    """A run and its step summaries as compact columns, for a waterfall of any size."""

    run: Run
    timeline: Timeline
    count: Annotated[int, Meta(description="How many steps: the length of each list")]
    names: list[str]
    models: list[str]
    statuses: list[StepStatus]
    steps: StepColumns
    orphans: Annotated[list[int], Meta(
        description="Positions of the roots whose parent is not in the run")]
    errors: Annotated[list[StepError], Meta(description="The steps that failed, by position")]


class SearchPage(Shape):
    """A page of steps, newest first."""

    steps: list[Step]
    next_cursor: Annotated[Optional[str], Meta(description="Pass as cursor for the next page")]
    limit: int


class StepInputs(Shape):
    """What re-running a step needs."""

    step_id: str
    run_id: str
    step_name: str
    model: Optional[str]
    input_data: Any
    parameters: Annotated[dict[str, Any], Meta(
        description="Model settings: metadata.parameters, or a recorded request's settings")]
    original_output: Any
    original_status: StepStatus
    original_error: Optional[str]


class ReplayInputs(StepInputs):
    """The inputs to replay a step with: the override (when given) as its input."""

    original_input: Any
    overridden: bool


class ComparedStep(Shape):
    step_id: str
    parent_step_id: Optional[str]
    step_name: str
    model: Optional[str]
    status: StepStatus
    depth: int
    offset_ms: float
    latency_ms: Optional[float]
    tokens_input: int
    tokens_output: int
    cost_usd: Cost
    error_type: Optional[str]


class StepDelta(Shape):
    """B minus A; null where either side has no value."""

    latency_ms: Optional[float]
    tokens_input: int
    tokens_output: int
    total_tokens: int
    cost_usd: Optional[float]


class ComparedPair(Shape):
    step_name: str
    match: Annotated[Optional[Literal["replay", "tree", "name"]], Meta(
        description="How the steps were paired; null: the step is on one side only")]
    a: Optional[ComparedStep]
    b: Optional[ComparedStep]
    delta: Optional[StepDelta]


class RunTotals(Shape):
    duration_ms: Optional[float]
    step_count: int
    error_count: int
    tokens_input: int
    tokens_output: int
    total_tokens: int
    cost_usd: Optional[float]
    unpriced_steps: int


class CompareTotals(Shape):
    a: RunTotals
    b: RunTotals
    delta: RunTotals


class Compare(Shape):
    """Two runs' steps paired, with deltas (B minus A), and the steps on one side only."""

    run_a: Run
    run_b: Run
    steps: list[ComparedPair]
    only_in_a: Ids
    only_in_b: Ids
    matched: int
    totals: CompareTotals


Latency = msgspec.defstruct(
    "Latency",
    [("mean", Optional[float])] + [(f"p{p}", Optional[float]) for p in PERCENTILES],
    bases=(Shape,), kw_only=True,
)
Latency.__doc__ = "Milliseconds: mean and nearest-rank percentiles; null: no finished step"


class StepStats(Shape):
    step_name: str
    count: int
    running: int
    errors: int
    error_rate: Annotated[Optional[float], Meta(
        description="Errors over finished steps; null: none has finished")]
    latency_ms: Latency
    tokens_input: int
    tokens_output: int
    cost_usd: Cost
    unpriced_steps: int


class EventStats(Shape):
    subscribers: int
    messages_sent: int
    dropped: Annotated[int, Meta(description="Messages never sent because their subscriber "
                                             "fell too far behind and was disconnected")]
    disconnected_slow: Annotated[int, Meta(description="Subscribers disconnected as too slow")]


class ReaderStats(Shape):
    queries: int
    timeouts: int


class Stats(Shape):
    """Statistics per step name, and what was lost on the way."""

    steps: list[StepStats]
    client_drops: Annotated[dict[str, int], Meta(
        description="Events clients dropped before sending, by reason")]
    events: EventStats
    reader: ReaderStats
