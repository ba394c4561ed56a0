"""The OTLP export: every line the API and the command line write is an OTLP/JSON
TracesData that the official opentelemetry-proto classes read (protobuf's json_format
refuses unknown fields, so a wrong field name fails here), with the GenAI, OpenInference
and traceforge.* attributes LLM tools read."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from api_support import call, get
from otlp_support import attributes, parse_line, spans_of
from traceforge_daemon.otlp import attributes as names


def export(demo, run_key: str) -> tuple[list[dict], list]:
    """(the raw JSON lines, the TracesData messages) of one run's OTLP export."""
    status, text, headers = call(demo.url, "GET", f"/api/runs/{demo.ids[run_key]}/export",
                                 {"format": "otlp"})
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    assert text.endswith("\n")
    lines = text.splitlines()
    return [json.loads(line) for line in lines], [parse_line(line) for line in lines]


def test_every_line_is_a_traces_data_with_hex_ids_string_times_and_integer_enums(demo):
    for key in ("a", "b", "errors", "unpriced"):
        raw, messages = export(demo, key)
        detail = get(demo.url, f"/api/runs/{demo.ids[key]}")
        steps = {step["step_id"]: step for step in detail["steps"]}
        spans = [span for message in messages for span in spans_of(message)]
        assert sorted(span.span_id.hex() for span in spans) == sorted(steps)
        for span in spans:
            step = steps[span.span_id.hex()]
            assert span.trace_id.hex() == demo.ids[key]
            assert span.parent_span_id.hex() == (step["parent_step_id"] or "")
            assert span.name == step["step_name"]
            assert abs(span.start_time_unix_nano - step["started_at"] * 1e9) < 1e3
            assert span.end_time_unix_nano >= span.start_time_unix_nano
        for line in raw:
            [resource_spans] = line["resourceSpans"]
            assert {"key": "service.name", "value": {"stringValue": "traceforge"}} in \
                resource_spans["resource"]["attributes"]
            for scope_spans in resource_spans["scopeSpans"]:
                assert scope_spans["scope"]["name"] == "traceforge"
                for span in scope_spans["spans"]:
                    assert isinstance(span["startTimeUnixNano"], str)
                    assert isinstance(span["kind"], int) and isinstance(
                        span["status"].get("code", 0), int)
                    assert "parentSpanId" in span or steps[span["spanId"]][
                        "parent_step_id"] is None


def test_an_llm_step_speaks_genai_openinference_and_traceforge(demo):
    raw, messages = export(demo, "a")
    spans = {span.name: span for message in messages for span in spans_of(message)}
    extract = spans["extract_facts"]
    assert extract.kind == 3  # CLIENT: a call to a model
    got = attributes(extract)
    assert got[names.GEN_AI_OPERATION] == "chat"
    assert got[names.GEN_AI_PROVIDER] == "anthropic" == got[names.LLM_PROVIDER]
    assert got[names.GEN_AI_REQUEST_MODEL] == "claude-haiku-4-5" == got[names.LLM_MODEL_NAME]
    assert got[names.GEN_AI_INPUT_TOKENS] == 112 == got[names.LLM_PROMPT_TOKENS]
    assert got[names.GEN_AI_OUTPUT_TOKENS] == 48 == got[names.LLM_COMPLETION_TOKENS]
    assert got[names.LLM_TOTAL_TOKENS] == 160
    assert got[names.GEN_AI_COST] == 0.001 == got[names.LLM_COST_TOTAL] == got[names.TF_COST]
    assert got[names.OI_SPAN_KIND] == "LLM"
    assert json.loads(got[names.INPUT_VALUE]) == {"prompt": "extract_facts"}
    assert got[names.INPUT_MIME] == "application/json"
    assert got[names.OUTPUT_VALUE] == "extract_facts output"
    assert got[names.OUTPUT_MIME] == "text/plain"
    assert got[names.TF_RUN_NAME] == "research: climate"
    assert got[names.TF_STATUS] == "ok" and extract.status.code == 1
    assert json.loads(got[names.TF_METADATA]) == {
        "parameters": {"temperature": 0.2, "max_tokens": 512}}
    search = attributes(spans["web_search"])
    assert spans["web_search"].kind == 1 and search[names.OI_SPAN_KIND] == "CHAIN"
    assert names.GEN_AI_OPERATION not in search and names.GEN_AI_COST not in search


def test_a_failed_step_has_status_2_and_an_exception_event(demo):
    _, messages = export(demo, "errors")
    spans = {span.name: span for message in messages for span in spans_of(message)}
    failed = spans["call_api"]
    assert failed.status.code == 2 and failed.status.message == "upstream timed out"
    [event] = [event for event in failed.events if event.name == "exception"]
    fields = attributes(event)
    assert fields["exception.type"] == "ConnectionError"
    assert fields["exception.message"] == "upstream timed out"
    assert "Traceback" in fields["exception.stacktrace"]
    assert attributes(failed)[names.ERROR_TYPE] == "ConnectionError"
    assert spans["fallback"].status.code == 1 and not spans["fallback"].events


def test_an_unpriced_step_carries_no_cost_and_counts_cached_input_in_the_prompt(demo):
    _, messages = export(demo, "unpriced")
    [span] = spans_of(messages[0])
    got = attributes(span)
    assert got[names.TF_UNPRICED] is True
    assert not {names.GEN_AI_COST, names.LLM_COST_TOTAL, names.TF_COST} & set(got)
    assert got[names.GEN_AI_INPUT_TOKENS] == 2300 and got[names.GEN_AI_CACHE_READ] == 300
    assert got[names.LLM_CACHE_READ] == 300 and names.GEN_AI_PROVIDER not in got


def _traces(text: str) -> set[str]:
    return {span.trace_id.hex() for line in text.splitlines()
            for span in spans_of(parse_line(line))}


def test_the_api_exports_a_time_range_a_name_search_or_everything(demo):
    research = {demo.ids["a"], demo.ids["b"]}
    everything = {demo.ids[key] for key in ("a", "b", "errors", "unpriced")}
    status, text, headers = call(demo.url, "GET", "/api/export")
    assert status == 200 and "otlp.jsonl" in headers["Content-Disposition"]
    assert _traces(text) == everything
    _, text, _ = call(demo.url, "GET", "/api/export", {"q": "climate"})
    assert _traces(text) == research
    run_b = get(demo.url, f"/api/runs/{demo.ids['b']}")["run"]
    _, text, _ = call(demo.url, "GET", "/api/export", {"end_time": run_b["started_at"] - 1e-6})
    assert _traces(text) == {demo.ids["a"]}
    _, text, _ = call(demo.url, "GET", "/api/export", {"status": "error", "format": "flat"})
    assert {json.loads(line)["traceId"] for line in text.splitlines()} == {demo.ids["errors"]}


def cli(demo, *args: str, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traceforge_daemon", "export", *args],
                          env=demo.daemon.env, cwd=demo.daemon.cwd, capture_output=False,
                          stdout=subprocess.PIPE, stderr=stderr, timeout=120)


def test_the_command_line_exports_one_run_a_range_or_everything(demo, tmp_path):
    target = tmp_path / "a.jsonl"
    one = cli(demo, demo.ids["a"], "-o", str(target))
    assert one.returncode == 0 and one.stdout == b"" and one.stderr == b""
    _, api_text, _ = call(demo.url, "GET", f"/api/runs/{demo.ids['a']}/export")
    assert target.read_text() == api_text
    everything = cli(demo)
    assert everything.returncode == 0
    assert _traces(everything.stdout.decode()) == {
        demo.ids[key] for key in ("a", "b", "errors", "unpriced")}
    run_b = get(demo.url, f"/api/runs/{demo.ids['b']}")["run"]
    ranged = cli(demo, "--since", str(run_b["started_at"]), "--name-contains", "climate")
    assert _traces(ranged.stdout.decode()) == {demo.ids["b"]}
    flat = cli(demo, demo.ids["a"], "--format", "flat")
    assert len(flat.stdout.decode().splitlines()) == 8
    unknown = cli(demo, "9" * 32)
    assert unknown.returncode == 1 and b"no run" in unknown.stderr
    assert b"Traceback" not in unknown.stderr
    bad = cli(demo, "--since", "the other day")
    assert bad.returncode == 1 and bad.stdout == b"" and b"Traceback" not in bad.stderr
    failed = cli(demo, "--status", "error")
    assert _traces(failed.stdout.decode()) == {demo.ids["errors"]}
    none_incomplete = cli(demo, "--status", "incomplete")  # every status the API knows
    assert none_incomplete.returncode == 0 and none_incomplete.stdout == b""


def test_the_progress_bar_goes_to_stderr_only_on_a_terminal(demo, tmp_path):
    plain = cli(demo, "-o", str(tmp_path / "plain.jsonl"))
    assert plain.returncode == 0 and plain.stderr == b""
    controller, terminal = pty.openpty()
    try:
        shown = cli(demo, "-o", str(tmp_path / "shown.jsonl"), stderr=terminal)
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert shown.returncode == 0 and b"exporting [" in drawn and b"100%" in drawn
    assert (tmp_path / "shown.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


@pytest.mark.parametrize("path", ["/api/export", "/api/runs/{a}/export"])
def test_the_flat_format_keeps_its_own_shape_under_its_own_name(demo, path):
    _, text, _ = call(demo.url, "GET", path.format(a=demo.ids["a"]), {"format": "flat"})
    span = json.loads(text.splitlines()[0])
    assert {"traceId", "spanId", "operationName", "attributes", "status"} <= set(span)
    assert "resourceSpans" not in span
