"""OTLP ingest: POST /v1/traces takes what OpenTelemetry exporters send (protobuf or
JSON, gzip or not), stores traces as runs and spans as steps through the writer, and
answers as the OTLP/HTTP specification says."""

from __future__ import annotations

import gzip
import json
import urllib.request

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from api_support import call, get
from conftest import wait_until
from otlp_support import parse_line, spans_of

# An app instrumented as users do it: the OpenTelemetry SDK, a BatchSpanProcessor and
# the stock OTLP/HTTP exporter (protobuf, gzip), pointed at the daemon. An in-memory
# exporter beside it records what the SDK made, for the test to compare with.
SDK_APP = r'''
import json, sys
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
    endpoint=sys.argv[1] + "/v1/traces", compression=Compression.Gzip)))
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("support-bot", "1.2.3")

with tracer.start_as_current_span("answer ticket") as root:
    with tracer.start_as_current_span("chat claude-haiku-4-5", kind=SpanKind.CLIENT) as llm:
        llm.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-haiku-4-5",
            "gen_ai.response.model": "claude-haiku-4-5-20251001",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.request.temperature": 0.2,
        })
    with tracer.start_as_current_span("rerank") as rerank:
        rerank.set_attributes({
            "openinference.span.kind": "LLM", "llm.model_name": "house-reranker",
            "llm.token_count.prompt": 50, "llm.token_count.completion": 5,
            "llm.cost.total": 0.25, "input.value": '{"q": "refund"}',
            "input.mime_type": "application/json", "output.value": "ranked",
        })
    with tracer.start_as_current_span("mystery") as mystery:
        mystery.set_attributes({"gen_ai.request.model": "mystery-model",
                                "gen_ai.usage.input_tokens": 10})
    try:
        with tracer.start_as_current_span("lookup order"):
            raise KeyError("order 42")
    except KeyError:
        pass
provider.shutdown()
print(json.dumps([{
    "trace_id": format(s.context.trace_id, "032x"), "span_id": format(s.context.span_id, "016x"),
    "parent": format(s.parent.span_id, "016x") if s.parent else None, "name": s.name,
    "start": s.start_time, "end": s.end_time,
} for s in memory.get_finished_spans()]))
'''


def test_an_app_instrumented_with_the_opentelemetry_sdk_shows_up_as_runs(daemon):
    made = json.loads(daemon.run_python(SDK_APP, args=(daemon.http_url,)).stdout)
    [run_id] = {span["trace_id"] for span in made}
    runs = get(daemon.http_url, "/api/runs")["runs"]
    [run] = [run for run in runs if run["run_id"] == run_id]
    assert run["run_name"] == "answer ticket" and run["status"] == "error"
    assert run["metadata"]["otel.resource"]["service.name"] == "support-bot"
    detail = get(daemon.http_url, f"/api/runs/{run_id}")
    steps = {step["step_name"]: step for step in detail["steps"]}
    by_id = {span["span_id"]: span for span in made}
    for step in detail["steps"]:
        assert step["parent_step_id"] == by_id[step["step_id"]]["parent"]
    root = steps["answer ticket"]
    assert detail["roots"] == [root["step_id"]] and root["depth"] == 0
    assert sorted(root["children"]) == sorted(
        steps[name]["step_id"] for name in ("chat claude-haiku-4-5", "rerank", "mystery",
                                            "lookup order"))
    chat = steps["chat claude-haiku-4-5"]
    assert chat["model"] == "claude-haiku-4-5-20251001"  # the served model
    assert (chat["tokens_input"], chat["tokens_cache_read"], chat["tokens_output"]) == (
        200, 1000, 300)  # GenAI counts cached input in input_tokens; TraceForge does not
    # priced from the table: Haiku 4.5 at $1/M input, $0.10/M cache reads, $5/M output
    assert chat["cost_usd"] == pytest.approx((200 * 1.0 + 1000 * 0.1 + 300 * 5.0) / 1e6)
    rerank = steps["rerank"]
    assert (rerank["model"], rerank["tokens_input"], rerank["tokens_output"]) == (
        "house-reranker", 50, 5)
    assert rerank["cost_usd"] == 0.25  # the span's own cost wins
    assert steps["mystery"]["cost_usd"] is None  # no price known: unpriced, not $0
    failed = steps["lookup order"]
    assert failed["status"] == "error" and failed["error_type"] == "KeyError"
    assert "order 42" in failed["error"]
    step = get(daemon.http_url, f"/api/steps/{rerank['step_id']}")
    assert step["input_data"] == {"q": "refund"} and step["output_data"] == "ranked"
    trace = get(daemon.http_url, f"/api/steps/{failed['step_id']}")["traceback"]
    assert "KeyError" in trace

    status, text, _ = call(daemon.http_url, "GET", f"/api/runs/{run_id}/export")
    assert status == 200
    exported = [span for line in text.splitlines() for span in spans_of(parse_line(line))]
    assert sorted((s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None,
                   s.name, s.start_time_unix_nano, s.end_time_unix_nano) for s in exported) \
        == sorted((s["trace_id"], s["span_id"], s["parent"], s["name"], s["start"], s["end"])
                  for s in made)
    health = daemon.health()["otlp_receiver"]
    assert health["spans_accepted"] == 5 and health["spans_rejected"] == 0


def post(url: str, body: bytes, content_type: str, gzip_it: bool = False,
         headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(
        url + "/v1/traces", data=gzip.compress(body) if gzip_it else body, method="POST",
        headers={"Content-Type": content_type, **({"Content-Encoding": "gzip"} if gzip_it
                                                  else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def make_span(trace: str, span: str, name: str, parent: str = "", start: int = 10**18,
              **attributes) -> trace_pb2.Span:
    made = trace_pb2.Span(trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span),
                          name=name, start_time_unix_nano=start,
                          end_time_unix_nano=start + 5_000_000)
    if parent:
        made.parent_span_id = bytes.fromhex(parent)
    for key, value in attributes.items():
        made.attributes.add(key=key, value=common_pb2.AnyValue(string_value=str(value)))
    return made


def request_of(*spans: trace_pb2.Span) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend(spans)
    return request


TRACE = "5b8efff798038103d269b633813fc60c"


def test_spans_with_invalid_ids_are_a_partial_success_in_the_requests_encoding(daemon):
    good = make_span(TRACE, "eee19b7ec3c1b174", "fine")
    no_trace = make_span("00" * 16, "eee19b7ec3c1b175", "zero trace id")
    status, body, headers = post(daemon.http_url, request_of(good, no_trace)
                                 .SerializeToString(), "application/x-protobuf")
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message
    json_request = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": "eee19b7ec3c1b176", "name": "json span",
         "startTimeUnixNano": "1000000000000000000", "endTimeUnixNano": "1000000000500000000",
         "kind": 1, "someFutureField": True},
        {"traceId": "xyz", "spanId": "eee19b7ec3c1b177", "name": "bad id"}]}]}]}
    status, body, headers = post(daemon.http_url, json.dumps(json_request).encode(),
                                 "application/json", gzip_it=True)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"partialSuccess": {"rejectedSpans": "1",
                                                   "errorMessage": json.loads(body)[
                                                       "partialSuccess"]["errorMessage"]}}
    names = {step["step_name"] for step in get(daemon.http_url, f"/api/runs/{TRACE}")["steps"]}
    assert names == {"fine", "json span"}
    assert daemon.health()["otlp_receiver"]["spans_rejected"] == 2


@pytest.mark.parametrize("content_type, body, gzip_it, status", [
    ("application/x-protobuf", b"\xff\xff\xff not protobuf", False, 400),
    ("application/json", b"{not json", False, 400),
    ("application/json", b'{"resourceSpans": 7}', False, 400),
    ("application/x-protobuf", b"\x1f\x8b\x08 broken gzip", None, 400),
    ("text/plain", b"hello", False, 415),
])
def test_a_bad_payload_is_a_400_and_an_unknown_content_type_a_415(daemon, content_type, body,
                                                                   gzip_it, status):
    headers = {"Content-Encoding": "gzip"} if gzip_it is None else None
    got, answer, answer_headers = post(daemon.http_url, body, content_type,
                                       gzip_it=bool(gzip_it), headers=headers)
    assert got == status
    if content_type == "application/x-protobuf":
        assert answer_headers["Content-Type"] == "application/x-protobuf" and answer
    else:
        assert json.loads(answer)["message"]
    assert daemon.health()["status"] == "ok"


def test_a_request_over_the_size_limit_is_a_413(daemon_factory):
    daemon = daemon_factory(("--max-frame-bytes", "65536")).start()
    big = make_span(TRACE, "eee19b7ec3c1b178", "big", payload="x" * 70_000)
    status, _, _ = post(daemon.http_url, request_of(big).SerializeToString(),
                        "application/x-protobuf", gzip_it=True)
    assert status == 413
    assert daemon.stop() == 0


def test_a_trace_whose_root_comes_later_is_a_run_at_once_and_renamed_by_its_root(daemon):
    trace, root, child = "6c0ffee0000000000000000000000001", "a000000000000001", "a000000000000002"
    post(daemon.http_url, request_of(make_span(trace, child, "child", parent=root,
                                               start=10**18 + 1000)).SerializeToString(),
         "application/x-protobuf")
    [run] = [run for run in get(daemon.http_url, "/api/runs")["runs"] if run["run_id"] == trace]
    assert (run["run_name"], run["status"]) == ("child", "running")
    detail = get(daemon.http_url, f"/api/runs/{trace}")
    assert detail["steps"][0]["orphan"] is True
    post(daemon.http_url, request_of(make_span(trace, root, "the workflow"))
         .SerializeToString(), "application/x-protobuf")
    detail = get(daemon.http_url, f"/api/runs/{trace}")
    assert (detail["run"]["run_name"], detail["run"]["status"]) == ("the workflow", "success")
    assert detail["run"]["started_at"] == pytest.approx(1e9)
    assert detail["roots"] == [root] and detail["steps"][1]["parent_step_id"] == root


def test_an_otlp_export_sent_back_in_as_json_comes_out_the_same(demo, daemon):
    """TraceForge's own OTLP/JSON export, posted to another daemon as an exporter would,
    exports again with the same ids, times, names, kinds, statuses and attributes (but
    the latency, which the first daemon had from the client's exact nanoseconds)."""
    for key in ("a", "errors", "unpriced"):
        _, text, _ = call(demo.url, "GET", f"/api/runs/{demo.ids[key]}/export")
        for line in text.splitlines():
            status, _, _ = post(daemon.http_url, line.encode(), "application/json", True)
            assert status == 200
        _, again, _ = call(daemon.http_url, "GET", f"/api/runs/{demo.ids[key]}/export")

        def described(lines: str) -> list:
            spans = [s for line in lines.splitlines() for s in spans_of(parse_line(line))]
            return sorted((s.span_id.hex(), s.parent_span_id.hex(), s.name, s.kind,
                           s.start_time_unix_nano, s.end_time_unix_nano, s.status.code,
                           s.status.message, sorted((a.key, str(a.value)) for a in s.attributes
                                                    if a.key != "traceforge.latency_ms"))
                          for s in spans)
        assert described(again) == described(text)
    detail = get(daemon.http_url, f"/api/runs/{demo.ids['a']}")
    assert detail["run"]["run_name"] == "research: climate"  # from traceforge.run.name
    assert detail["run"]["tokens_input"] == get(demo.url, f"/api/runs/{demo.ids['a']}")[
        "run"]["tokens_input"]


def test_beyond_loopback_v1_traces_needs_the_token_like_the_rest(daemon_factory):
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", "s3cret-s3cret-s3cret")).start()
    url = daemon.http_url.replace("0.0.0.0", "127.0.0.1")
    body = request_of(make_span(TRACE, "eee19b7ec3c1b179", "guarded")).SerializeToString()
    status, _, _ = post(url, body, "application/x-protobuf")
    assert status == 401
    status, _, _ = post(url, body, "application/x-protobuf",
                        headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})
    assert status == 200
    wait_until(lambda: daemon.query("SELECT step_name FROM steps") == [("guarded",)])
    assert daemon.stop() == 0
