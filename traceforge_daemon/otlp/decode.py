"""OTLP spans as the protocol's events, so they take the writer's path like a client's.

trace id -> run, span id -> step, parent span id -> parent step, status ERROR -> a
failed step (its ``exception`` event gives the error's type, message and traceback).
Model, tokens, cache tokens, cost and input/output are read from either vocabulary
(``attributes``); a span with tokens and no cost is priced from the price table, and
stays unpriced (not $0) when its model has no price. Every other attribute, the kind,
scope, events, links and exact nanosecond times are kept in the step's metadata
(``attributes.METADATA_KEY``), so the OTLP export gives the span back as it came.

A trace's root span (no parent, or a parent the span's flags mark remote) names the
run and ends it. Spans of a trace whose root is not in the request still make a run,
named after ``traceforge.run.name`` or its earliest span; its root renames it when it
comes (``storage.daemon_events.RunNamed``): SDKs export a span when it ends, so a root
usually arrives last.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import msgspec
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from traceforge_protocol import pricing, wire

from ..storage import records
from ..storage.daemon_events import RunNamed
from . import attributes as names
from .values import attributes_dict

ERROR = trace_pb2.Status.STATUS_CODE_ERROR
REMOTE_PARENT = 0x300  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | SPAN_FLAGS_CONTEXT_IS_REMOTE
ZERO_TRACE, ZERO_SPAN = bytes(16), bytes(8)
MAX_PROBLEMS = 5

_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


class Decoded(NamedTuple):
    batches: list[tuple[int, str, list]]
    """(pid, host, events) per resource: the events to submit, in order."""
    accepted: int
    rejected: int
    problems: list[str]
    """Why spans were rejected: the first few reasons."""


class _Trace:
    __slots__ = ("first", "root", "run_name", "ended", "failed", "error", "metadata")

    def __init__(self, metadata: str) -> None:
        self.first: Optional[wire.StepEnd] = None
        self.root: Optional[wire.StepEnd] = None
        self.run_name: Optional[str] = None
        self.ended = 0
        self.failed = False
        self.error: Optional[str] = None
        self.metadata = metadata


def decode_request(request: trace_service_pb2.ExportTraceServiceRequest) -> Decoded:
    by_process: dict[tuple[int, str], list] = {}
    traces: dict[str, _Trace] = {}
    accepted = rejected = 0
    problems: list[str] = []
    runs: list = []
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        service = resource.get(names.SERVICE_NAME)
        process = (_pid(resource.get(names.PROCESS_PID)), _host(resource.get(names.HOST_NAME)))
        run_metadata = _encode({names.RESOURCE_KEY: resource}).decode()
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                problem = _invalid(span)
                if problem:
                    rejected += 1
                    if len(problems) < MAX_PROBLEMS:
                        problems.append(problem)
                    continue
                accepted += 1
                start, end, consumed = _step(span, scope, service)
                # A span TraceForge exported names the process that made it.
                where = (_pid(consumed.get(names.TF_PID)) or process[0],
                         _host(consumed.get(names.TF_HOST)) or process[1])
                by_process.setdefault(where, []).extend((start, end))
                trace = traces.get(end.run_id)
                if trace is None:
                    trace = traces[end.run_id] = _Trace(run_metadata)
                _note(trace, end, span, _text(consumed.get(names.TF_RUN_NAME)))
    runs = _run_events(traces)
    batches = [(pid, host, events) for (pid, host), events in by_process.items()]
    if runs:
        batches.insert(0, (0, "", runs))  # runs first: a run's row before its steps
    return Decoded(batches, accepted, rejected, problems)


def _pid(value: Any) -> int:
    return value if isinstance(value, int) and 0 < value < 2**31 else 0


def _host(value: Any) -> str:
    return value[:255] if isinstance(value, str) else ""


def _invalid(span: trace_pb2.Span) -> Optional[str]:
    if len(span.trace_id) != 16 or span.trace_id == ZERO_TRACE:
        return "a span has no valid trace id (16 bytes, not all zero)"
    if len(span.span_id) != 8 or span.span_id == ZERO_SPAN:
        return f"span {span.name[:80]!r} has no valid span id (8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.span_id.hex()} has a parent span id that is not 8 bytes"
    return None


def _note(trace: _Trace, end: wire.StepEnd, span: trace_pb2.Span,
          run_name: Optional[str]) -> None:
    if trace.first is None or end.start_ns < trace.first.start_ns:
        trace.first = end
    if run_name and trace.run_name is None:
        trace.run_name = run_name[:wire.MAX_NAME_CHARS]
    is_root = end.parent_step_id is None or span.flags & REMOTE_PARENT == REMOTE_PARENT
    if is_root:
        if trace.root is None or end.start_ns < trace.root.start_ns:
            trace.root = end
        trace.ended = max(trace.ended, end.end_ns)
        if end.status == "error":
            trace.failed = True
            trace.error = trace.error or records.error_text(end.error_type, end.error_message)


def _run_events(traces: dict[str, _Trace]) -> list:
    events: list = []
    for run_id, trace in traces.items():
        head = trace.root or trace.first
        name = trace.run_name or head.name
        events.append(wire.RunStart(run_id=run_id, name=name, start_ns=head.start_ns,
                                    metadata_json=trace.metadata))
        if trace.root is not None:
            events.append(wire.RunEnd(
                run_id=run_id, name=name, start_ns=head.start_ns, end_ns=trace.ended,
                status="error" if trace.failed else "success", error=trace.error,
                metadata_json=trace.metadata))
            events.append(RunNamed(run_id, name, head.start_ns))
    return events


def _step(span: trace_pb2.Span, scope: dict, service: Any,
          ) -> tuple[wire.StepStart, wire.StepEnd, dict]:
    """The span's two events, and the attributes they consumed."""
    attrs = attributes_dict(span.attributes)
    consumed = {key: attrs.pop(key) for key in names.CONSUMED if key in attrs}
    run_id, step_id = span.trace_id.hex(), span.span_id.hex()
    parent = span.parent_span_id.hex() if span.parent_span_id not in (b"", ZERO_SPAN) else None
    name = span.name[:wire.MAX_NAME_CHARS] or "unnamed"
    start_ns = span.start_time_unix_nano
    end_ns = max(span.end_time_unix_nano, start_ns)
    model = _first_text(attrs, names.MODEL)
    cache_read = _first_count(consumed, names.CACHE_READ)
    cache_write = _first_count(consumed, names.CACHE_WRITE)
    prompt = _first_count(consumed, names.INPUT_TOKENS)
    # GenAI and OpenInference count cached input in the prompt, TraceForge does not; a
    # prompt smaller than its cache counts was sent without them (Anthropic's way).
    tokens_input = prompt - cache_read - cache_write if prompt >= cache_read + cache_write \
        else prompt
    tokens_output = _first_count(consumed, names.OUTPUT_TOKENS)
    cost = _cost(consumed, model, tokens_input, tokens_output, cache_read, cache_write)

    failed = span.status.code == ERROR
    error_type = error_message = traceback = None
    events = []
    for event in span.events:
        fields = attributes_dict(event.attributes)
        if event.name == names.EXCEPTION_EVENT and error_type is None and failed:
            error_type = _text(fields.get(names.EXCEPTION_TYPE))
            error_message = _text(fields.get(names.EXCEPTION_MESSAGE))
            traceback = _text(fields.get(names.EXCEPTION_STACKTRACE))
            continue
        events.append({"name": event.name, "time_unix_nano": event.time_unix_nano,
                       "attributes": fields})
    if failed:
        error_type = error_type or _text(attrs.get(names.ERROR_TYPE))
        error_message = error_message or span.status.message or None

    otel: dict[str, Any] = {"kind": span.kind, "start_ns": start_ns, "end_ns": end_ns,
                            "scope": scope}
    if attrs:
        otel["attributes"] = attrs
    if events:
        otel["events"] = events
    if span.links:
        otel["links"] = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                          "attributes": attributes_dict(link.attributes)} for link in span.links]
    if isinstance(service, str):
        otel["service"] = service
    if span.trace_state:
        otel["trace_state"] = span.trace_state
    if span.flags:
        otel["flags"] = span.flags
    if not failed:
        otel["status_code"] = span.status.code
    metadata = _json_value(consumed.get(names.TF_METADATA))
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata[names.METADATA_KEY] = otel

    input_json = _payload(consumed, names.INPUT_VALUE, names.INPUT_MIME) \
        or _messages(attrs.get(names.GEN_AI_INPUT_MESSAGES))
    output_json = _payload(consumed, names.OUTPUT_VALUE, names.OUTPUT_MIME) \
        or _messages(attrs.get(names.GEN_AI_OUTPUT_MESSAGES))
    start = wire.StepStart(run_id=run_id, step_id=step_id, name=name, start_ns=start_ns,
                           parent_step_id=parent, model=model, input_json=input_json)
    end = wire.StepEnd(
        run_id=run_id, step_id=step_id, name=name, start_ns=start_ns, end_ns=end_ns,
        parent_step_id=parent, status="error" if failed else "ok", model=model,
        output_json=output_json, tokens_input=tokens_input, tokens_output=tokens_output,
        tokens_cache_read=cache_read, tokens_cache_write=cache_write, cost_usd=cost,
        error_type=error_type, error_message=error_message, traceback=traceback,
        metadata_json=_encode(metadata).decode(),
    )
    return start, end, consumed


def _cost(consumed: dict, model: Optional[str], tokens_input: int, tokens_output: int,
          cache_read: int, cache_write: int) -> Optional[float]:
    if consumed.get(names.TF_UNPRICED) is True:
        return None
    for key in names.COST:
        value = _number(consumed.get(key))
        if value is not None:
            return value
    parts = [_number(consumed.get(key)) for key in (names.LLM_COST_PROMPT,
                                                     names.LLM_COST_COMPLETION)]
    if any(part is not None for part in parts):
        return sum(part or 0.0 for part in parts)
    return pricing.step_cost(model, tokens_input, tokens_output, cache_read, cache_write)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def _first_count(values: dict, keys: tuple) -> int:
    for key in keys:
        value = values.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        number = _number(value)
        if number is not None:
            return min(int(number), 2**62)
    return 0


def _first_text(values: dict, keys: tuple) -> Optional[str]:
    for key in keys:
        value = values.get(key)
        if isinstance(value, str) and value:
            return value[:wire.MAX_NAME_CHARS]
    return None


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    return value if isinstance(value, str) else _encode(value).decode()


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _decode_json(value)
        except msgspec.DecodeError:
            return None
    return value


def _payload(consumed: dict, value_key: str, mime_key: str) -> Optional[str]:
    """input.value / output.value as the JSON text TraceForge stores."""
    value = consumed.get(value_key)
    if value is None:
        return None
    if isinstance(value, str) and consumed.get(mime_key) == names.JSON_MIME:
        try:
            _decode_json(value)
            return value
        except msgspec.DecodeError:
            pass
    return _encode(value).decode()


def _messages(value: Any) -> Optional[str]:
    """gen_ai.input.messages / output.messages (JSON text, or structured) as JSON text."""
    if value is None:
        return None
    parsed = _json_value(value)
    return _encode(parsed if parsed is not None else value).decode()
