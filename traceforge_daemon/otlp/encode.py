"""Stored steps as OTLP spans: what the export and the forwarder send.

A run is a trace (run id = trace id) and a step a span (step id = span id, parent step
= parent span); TraceForge has no span for the run itself, so a run's root steps are
the trace's root spans, and the run's name travels on every span as
``traceforge.run.name``. Only ended steps become spans (OpenTelemetry has no span that
has not ended). Each span carries its facts in the three vocabularies of
``attributes``: an LLM step (one with a model or tokens) as a GenAI ``chat`` span of
kind CLIENT and an OpenInference ``LLM`` span, any other as an INTERNAL ``CHAIN`` span.
A failed step has status code 2 (ERROR) and an ``exception`` event. A span that came
in over OTLP goes back out as it came: its kind, scope, events, links, untouched
attributes and exact nanosecond times are in its metadata (``attributes.METADATA_KEY``).
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Optional

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from traceforge_protocol.version import __version__

from ..storage import rows
from ..storage.export import span_id, trace_id
from . import attributes as names
from .values import key_values

Span = trace_pb2.Span
INTERNAL, CLIENT = Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_CLIENT
STATUS_OK, STATUS_ERROR = trace_pb2.Status.STATUS_CODE_OK, trace_pb2.Status.STATUS_CODE_ERROR
SCOPE = ("traceforge", __version__)


class RunInfo(NamedTuple):
    """What a run adds to its spans: its name, its service and its resource."""

    name: Optional[str]
    service: str
    resource: dict


def run_info(name: Optional[str], metadata_text: Optional[str]) -> RunInfo:
    metadata = rows.decode_json(metadata_text)
    metadata = metadata if isinstance(metadata, dict) else {}
    resource = metadata.get(names.RESOURCE_KEY)
    resource = dict(resource) if isinstance(resource, dict) else {}
    service = resource.get(names.SERVICE_NAME) or metadata.get(names.SERVICE_NAME)
    service = service if isinstance(service, str) and service else names.DEFAULT_SERVICE
    resource[names.SERVICE_NAME] = service
    return RunInfo(name, service, resource)


UNKNOWN_RUN = run_info(None, None)


def _nanos(seconds: float, exact: Any) -> int:
    """The stored time in nanoseconds; an ingested span's exact value when it agrees."""
    if isinstance(exact, int) and abs(exact - seconds * 1e9) < 1_000:
        return exact
    return round(seconds * 1_000_000_000)


def _payload(text: Optional[str]) -> Optional[tuple[str, str]]:
    """(value, mime type) for input.value / output.value from a stored JSON payload."""
    if text is None:
        return None
    value = rows.decode_json(text)
    if isinstance(value, str):
        return value, names.TEXT_MIME
    return text, names.JSON_MIME


def _error_message(step: dict) -> str:
    error, kind = step["error"] or "", step["error_type"]
    prefix = f"{kind}: " if kind else ""
    return error[len(prefix):] if prefix and error.startswith(prefix) else error


def span(step: dict, run: RunInfo) -> tuple[tuple, Span, dict]:
    """``step`` (a dict of ``storage.forwarding.STEP_COLUMNS``, payloads as JSON text) as
    a span: (the (service, resource, scope) key it is grouped under, the span, the
    resource attributes)."""
    metadata = rows.decode_json(step["metadata"])
    metadata = metadata if isinstance(metadata, dict) else {}
    otel = metadata.pop(names.METADATA_KEY, None)
    otel = otel if isinstance(otel, dict) else {}
    original = otel.get("attributes")
    original = original if isinstance(original, dict) else {}
    model = step["model"]
    tokens_in, tokens_out = step["tokens_input"], step["tokens_output"]
    cache_read, cache_write = step["tokens_cache_read"], step["tokens_cache_write"]
    llm = bool(model) or bool(tokens_in or tokens_out or cache_read or cache_write)
    facts: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    if llm:
        prompt = tokens_in + cache_read + cache_write  # GenAI and OpenInference count cache in
        facts.update({
            names.GEN_AI_INPUT_TOKENS: prompt, names.GEN_AI_OUTPUT_TOKENS: tokens_out,
            names.LLM_PROMPT_TOKENS: prompt, names.LLM_COMPLETION_TOKENS: tokens_out,
            names.LLM_TOTAL_TOKENS: prompt + tokens_out,
        })
        if cache_read:
            facts[names.GEN_AI_CACHE_READ] = facts[names.LLM_CACHE_READ] = cache_read
        if cache_write:
            facts[names.GEN_AI_CACHE_CREATION] = facts[names.LLM_CACHE_WRITE] = cache_write
        defaults[names.GEN_AI_OPERATION] = names.CHAT
        defaults[names.OI_SPAN_KIND] = names.OI_LLM
        if model:
            provider = metadata.get("provider") or names.provider_of(model)
            if isinstance(provider, str) and provider:
                defaults[names.GEN_AI_PROVIDER] = defaults[names.LLM_PROVIDER] = provider
            requested, served = metadata.get("model_requested"), metadata.get("model_served")
            defaults[names.GEN_AI_REQUEST_MODEL] = requested if isinstance(requested, str) \
                else model
            defaults[names.GEN_AI_RESPONSE_MODEL] = served if isinstance(served, str) else model
            defaults[names.LLM_MODEL_NAME] = model
    else:
        defaults[names.OI_SPAN_KIND] = names.OI_CHAIN
    cost = step["cost_usd"]
    if cost is None:
        facts[names.TF_UNPRICED] = True
    elif llm or cost:
        facts[names.GEN_AI_COST] = facts[names.LLM_COST_TOTAL] = float(cost)
        facts[names.TF_COST] = float(cost)
    for attribute, mime, text in ((names.INPUT_VALUE, names.INPUT_MIME, step["input_data"]),
                                  (names.OUTPUT_VALUE, names.OUTPUT_MIME, step["output_data"])):
        payload = _payload(text)
        if payload is not None:
            facts[attribute], facts[mime] = payload
    if run.name is not None:
        facts[names.TF_RUN_NAME] = run.name
    facts[names.TF_STATUS] = step["status"]
    if step["latency_ms"] is not None:
        facts[names.TF_LATENCY] = float(step["latency_ms"])
    if step["pid"]:
        facts[names.TF_PID] = step["pid"]
    if step["host"]:
        facts[names.TF_HOST] = step["host"]
    if metadata:
        facts[names.TF_METADATA] = rows.encode(metadata).decode()
    if step["error_type"]:
        defaults[names.ERROR_TYPE] = step["error_type"]
    merged = dict(facts)
    for source in (original, defaults):
        for key, value in source.items():
            merged.setdefault(key, value)

    started = _nanos(step["started_at"], otel.get("start_ns"))
    ended = _nanos(step["ended_at"] if step["ended_at"] is not None else step["started_at"],
                   otel.get("end_ns"))
    kind = otel.get("kind")
    result = Span(
        trace_id=bytes.fromhex(trace_id(step["run_id"])),
        span_id=bytes.fromhex(span_id(step["step_id"])),
        name=step["step_name"],
        kind=kind if isinstance(kind, int) and 0 <= kind <= 5 else (CLIENT if llm else INTERNAL),
        start_time_unix_nano=started,
        end_time_unix_nano=max(ended, started),
        attributes=key_values(merged.items()),
    )
    if step["parent_step_id"]:
        result.parent_span_id = bytes.fromhex(span_id(step["parent_step_id"]))
    if isinstance(otel.get("trace_state"), str):
        result.trace_state = otel["trace_state"]
    if isinstance(otel.get("flags"), int) and 0 <= otel["flags"] < 2**32:
        result.flags = otel["flags"]
    for event in otel.get("events") or ():
        if isinstance(event, dict):
            result.events.append(trace_pb2.Span.Event(
                name=str(event.get("name", "")), time_unix_nano=_int(event.get("time_unix_nano")),
                attributes=key_values(_dict(event.get("attributes")).items()),
            ))
    for link in otel.get("links") or ():
        if isinstance(link, dict):
            try:
                result.links.append(trace_pb2.Span.Link(
                    trace_id=bytes.fromhex(link["trace_id"]), span_id=bytes.fromhex(link["span_id"]),
                    attributes=key_values(_dict(link.get("attributes")).items()),
                ))
            except (KeyError, TypeError, ValueError):
                pass
    if step["status"] == "error":
        message = _error_message(step)
        result.status.code = STATUS_ERROR
        result.status.message = message
        event = {names.EXCEPTION_TYPE: step["error_type"] or "Error",
                 names.EXCEPTION_MESSAGE: message}
        if step["traceback"]:
            event[names.EXCEPTION_STACKTRACE] = step["traceback"]
        result.events.append(trace_pb2.Span.Event(
            name=names.EXCEPTION_EVENT, time_unix_nano=result.end_time_unix_nano,
            attributes=key_values(event.items())))
    elif step["status"] == "ok":
        code = otel.get("status_code")
        result.status.code = code if code in (0, 1) else STATUS_OK
    scope = otel.get("scope")
    scope = (str(scope.get("name", "")), str(scope.get("version", ""))) \
        if isinstance(scope, dict) else SCOPE
    service = otel.get("service")
    service = service if isinstance(service, str) and service else run.service
    resource = run.resource if service == run.service else {names.SERVICE_NAME: service}
    return (service, tuple(sorted((k, repr(v)) for k, v in resource.items())), scope), result, \
        resource


def _int(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 2**64 else 0


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def resource_spans(pieces: Iterable[tuple[dict, RunInfo]]) -> list[trace_pb2.ResourceSpans]:
    """Spans for (step, run) pairs, grouped by resource and then by scope."""
    groups: dict[tuple, trace_pb2.ResourceSpans] = {}
    scopes: dict[tuple, trace_pb2.ScopeSpans] = {}
    for step, run in pieces:
        (service, resource_key, scope), built, resource = span(step, run)
        group = groups.get((service, resource_key))
        if group is None:
            group = groups[(service, resource_key)] = trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=key_values(resource.items())))
        scope_spans = scopes.get((service, resource_key, scope))
        if scope_spans is None:
            scope_spans = group.scope_spans.add(
                scope=common_pb2.InstrumentationScope(name=scope[0], version=scope[1]))
            scopes[(service, resource_key, scope)] = scope_spans
        scope_spans.spans.append(built)
    return list(groups.values())


def traces_data(pieces: Iterable[tuple[dict, RunInfo]]) -> trace_pb2.TracesData:
    return trace_pb2.TracesData(resource_spans=resource_spans(pieces))
