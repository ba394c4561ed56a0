"""The API's OpenAPI 3 description (GET /openapi.json) and its docs page (GET /docs).

The description is written by hand next to the handlers it describes and is checked
two ways by the tests: every /api route of the app must appear here, and a
schema-driven fuzzer (schemathesis) sends what this document allows and checks the
answers against it. The docs page is local HTML and script: no CDN, works offline.
"""

from __future__ import annotations

from aiohttp import web

from traceforge_protocol import ids
from traceforge_protocol.version import __version__

from .docs_page import DOCS_HTML

routes = web.RouteTableDef()

RUN_ID = {"type": "string", "pattern": ids.RUN_ID_PATTERN, "example": "0190f5a2b3c4d5e6f708192a3b4c5d6e"}
STEP_ID = {"type": "string", "pattern": ids.STEP_ID_PATTERN, "example": "9f3c2a1b00000001"}
EPOCH = {"type": "number", "minimum": -1e15, "maximum": 1e15,
         "description": "Unix time in seconds, e.g. 1714000000.5"}
TEXT = {"type": "string", "maxLength": 512}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict, description: str, required: bool = False) -> dict:
    """A query parameter. An empty value (``?run_id=``) means "not given", as the
    seed's own URLs send it, except for a required parameter."""
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description, "allowEmptyValue": not required}


def _path(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "A parameter is malformed; the message names it",
            404: "No run or step has that id",
            413: "The request body is too large",
            503: "The query ran past its deadline; narrow the filters"}
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _operation(summary: str, description: str, parameters: list, ok: dict, *errors: int,
               tag: str) -> dict:
    return {"summary": summary, "description": description, "tags": [tag],
            "parameters": parameters, "responses": {"200": ok, **_errors(*errors)}}


INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
STRING = {"type": "string"}
ANY = {}

STEP_SUMMARY = {
    "type": "object",
    "required": ["step_id", "step_name", "status", "started_at", "tokens_input",
                 "tokens_output"],
    "properties": {
        "step_id": STRING, "parent_step_id": _nullable(STRING), "step_name": STRING,
        "model": _nullable(STRING), "status": {"type": "string", "enum": ["running", "ok", "error"]},
        "started_at": NUMBER, "ended_at": _nullable(NUMBER), "latency_ms": _nullable(NUMBER),
        "tokens_input": INTEGER, "tokens_output": INTEGER, "tokens_cache_read": INTEGER,
        "tokens_cache_write": INTEGER,
        "cost_usd": _nullable({**NUMBER, "description": "null: unpriced (no known price)"}),
        "error_type": _nullable(STRING), "error": _nullable(STRING),
    },
}
TREE_STEP = {
    "allOf": [STEP_SUMMARY, {"type": "object", "required": ["depth", "offset_ms", "children"],
                             "properties": {
                                 "depth": INTEGER, "offset_ms": NUMBER,
                                 "children": {"type": "array", "items": STRING},
                                 "orphan": {"type": "boolean"},
                                 "input_data": ANY, "output_data": ANY, "metadata": ANY}}],
}
STEP = {
    "allOf": [STEP_SUMMARY, {"type": "object", "required": ["run_id"], "properties": {
        "run_id": STRING, "input_data": ANY, "output_data": ANY, "metadata": ANY,
        "traceback": _nullable(STRING), "pid": _nullable(INTEGER), "host": _nullable(STRING),
    }}],
}
RUN = {
    "type": "object",
    "required": ["run_id", "run_name", "started_at", "status", "step_count", "error_count",
                 "tokens_input", "tokens_output", "cost_usd", "unpriced_steps"],
    "properties": {
        "run_id": STRING, "run_name": STRING, "started_at": NUMBER,
        "ended_at": _nullable(NUMBER), "duration_ms": _nullable(NUMBER),
        "status": {"type": "string", "enum": ["running", "success", "error"]},
        "metadata": ANY, "error": _nullable(STRING), "pid": _nullable(INTEGER),
        "host": _nullable(STRING), "replay_of_run_id": _nullable(STRING),
        "replay_of_step_id": _nullable(STRING), "step_count": INTEGER, "running_steps": INTEGER,
        "error_count": INTEGER, "tokens_input": INTEGER, "tokens_output": INTEGER,
        "tokens_cache_read": INTEGER, "tokens_cache_write": INTEGER, "total_tokens": INTEGER,
        "cost_usd": _nullable({**NUMBER, "description": "sum over priced steps; null when "
                               "no step is priced and some are unpriced"}),
        "unpriced_steps": INTEGER, "partial": {"type": "boolean"},
    },
}
COMPARED_STEP = _nullable({"type": "object", "properties": {
    name: ANY for name in ("step_id", "parent_step_id", "step_name", "model", "status", "depth",
                           "offset_ms", "latency_ms", "tokens_input", "tokens_output",
                           "cost_usd", "error_type")}})
SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "status"],
              "properties": {"error": STRING, "status": INTEGER}},
    "StepSummary": STEP_SUMMARY,
    "TreeStep": TREE_STEP,
    "Step": STEP,
    "Run": RUN,
    "RunList": {"type": "object", "required": ["runs", "next_cursor", "limit"], "properties": {
        "runs": {"type": "array", "items": _ref("Run")}, "next_cursor": _nullable(STRING),
        "limit": INTEGER}},
    "RunDetail": {"type": "object", "required": ["run", "steps", "roots", "timeline"],
                  "properties": {
                      "run": _ref("Run"), "steps": {"type": "array", "items": _ref("TreeStep")},
                      "roots": {"type": "array", "items": STRING},
                      "timeline": {"type": "object", "properties": {
                          "start": NUMBER, "end": NUMBER, "duration_ms": NUMBER}}}},
    "StepDetail": {"allOf": [_ref("Step"), {"type": "object", "properties": {
        "run_name": _nullable(STRING), "children": {"type": "array", "items": STRING},
        "replay_run_ids": {"type": "array", "items": STRING}}}]},
    "SearchResult": {"type": "object", "required": ["steps", "next_cursor", "limit"],
                     "properties": {"steps": {"type": "array", "items": _ref("Step")},
                                    "next_cursor": _nullable(STRING), "limit": INTEGER}},
    "StepInputs": {"type": "object", "required": ["step_id", "run_id", "step_name", "model",
                                                  "input_data", "parameters", "original_output"],
                   "properties": {
                       "step_id": STRING, "run_id": STRING, "step_name": STRING,
                       "model": _nullable(STRING), "input_data": ANY,
                       "parameters": {"type": "object"}, "original_output": ANY,
                       "original_status": STRING, "original_error": _nullable(STRING),
                       "original_input": ANY, "overridden": {"type": "boolean"}}},
    "Compare": {"type": "object", "required": ["run_a", "run_b", "steps", "only_in_a",
                                               "only_in_b", "totals"], "properties": {
        "run_a": _ref("Run"), "run_b": _ref("Run"),
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "step_name": STRING,
            "match": _nullable({"type": "string", "enum": ["replay", "tree", "name"]}),
            "a": COMPARED_STEP, "b": COMPARED_STEP,
            "delta": _nullable({"type": "object"})}}},
        "only_in_a": {"type": "array", "items": STRING},
        "only_in_b": {"type": "array", "items": STRING},
        "matched": INTEGER, "totals": {"type": "object"}}},
    "Stats": {"type": "object", "required": ["steps", "client_drops"], "properties": {
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "step_name": STRING, "count": INTEGER, "running": INTEGER, "errors": INTEGER,
            "error_rate": _nullable(NUMBER),
            "latency_ms": {"type": "object", "properties": {
                key: _nullable(NUMBER) for key in ("mean", "p50", "p95", "p99")}},
            "tokens_input": INTEGER, "tokens_output": INTEGER, "cost_usd": _nullable(NUMBER),
            "unpriced_steps": INTEGER}}},
        "client_drops": {"type": "object", "additionalProperties": INTEGER},
        "events": {"type": "object"}, "reader": {"type": "object"}}},
    "Health": {"type": "object", "required": ["status"], "properties": {"status": STRING}},
}

LIMIT_DOC = "Page size"
CURSOR = _query("cursor", {"type": "string", "maxLength": 200},
                "next_cursor from the previous page")


def build_spec() -> dict:
    run_path = _path("run_id", RUN_ID, "A run id: 32 lowercase hex characters")
    step_path = _path("step_id", STEP_ID, "A step id: 16 lowercase hex characters")
    paths = {
        "/api/health": {"get": _operation(
            "Daemon health", "Version, uptime, connections, events received and committed.",
            [], _json(_ref("Health"), "Health"), tag="daemon")},
        "/api/runs": {"get": _operation(
            "List runs", "Runs with totals over their steps, newest first.",
            [_query("name", TEXT, "Only runs with exactly this name"),
             _query("q", TEXT, "Only runs whose name contains this text"),
             _query("status", {"type": "string", "enum": ["running", "success", "error"]},
                    "Only runs in this state"),
             _query("start_time", EPOCH, "Only runs started at or after this time"),
             _query("end_time", EPOCH, "Only runs started at or before this time"),
             _query("replay_of", RUN_ID, "Only replays of steps of this run"),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    LIMIT_DOC),
             _query("offset", {"type": "integer", "minimum": 0, "maximum": 2**53},
                    "Rows to skip (instead of a cursor)"),
             CURSOR],
            _json(_ref("RunList"), "A page of runs"), 400, 503, tag="runs")},
        "/api/runs/{run_id}": {"get": _operation(
            "One run as a tree",
            "The run, its steps in start order (each with depth, offset_ms from the run's "
            "start and its children's ids) and the ids of the root steps. Steps whose parent "
            "is not in the run are roots marked orphan.",
            [run_path, _query("payloads", {"type": "boolean", "default": False},
                              "Include each step's input_data, output_data and metadata")],
            _json(_ref("RunDetail"), "The run"), 400, 404, 503, tag="runs")},
        "/api/runs/{run_id}/export": {"get": _operation(
            "Export a run as JSONL spans",
            "One OpenTelemetry-style span per line (traceId, spanId, parentSpanId, "
            "operationName, startTimeUnixNano, endTimeUnixNano, attributes, status), with "
            "llm.* and gen_ai.* attributes.",
            [run_path],
            {"description": "JSON Lines",
             "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
            400, 404, 503, tag="runs")},
        "/api/compare": {"get": _operation(
            "Compare two runs",
            "Steps paired by replay link, tree position (name and occurrence among "
            "siblings), then name; deltas are B minus A.",
            [_query("run_id_a", RUN_ID, "Run A", required=True),
             _query("run_id_b", RUN_ID, "Run B", required=True)],
            _json(_ref("Compare"), "The comparison"), 400, 404, 503, tag="runs")},
        "/api/steps/{step_id}": {"get": _operation(
            "One step", "The step with input, output, metadata, error and traceback.",
            [step_path], _json(_ref("StepDetail"), "The step"), 400, 404, 503, tag="steps")},
        "/api/steps/{step_id}/inputs": {"get": _operation(
            "What re-running a step needs",
            "Name, recorded input, model, parameters (the step's metadata) and the "
            "original output.",
            [step_path], _json(_ref("StepInputs"), "The inputs"), 400, 404, 503, tag="steps")},
        "/api/search": {"get": _operation(
            "Search steps", "Steps across runs, newest first; every filter combines.",
            [_query("run_id", RUN_ID, "Only steps of this run"),
             _query("step_name", TEXT, "Only steps with exactly this name"),
             _query("has_error", {"type": "boolean"}, "Only failed (true) or not failed steps"),
             _query("min_tokens", {"type": "integer", "minimum": 0, "maximum": 2**53},
                    "Only steps with at least this many input plus output tokens"),
             _query("start_time", EPOCH, "Only steps started at or after this time"),
             _query("end_time", EPOCH, "Only steps started at or before this time"),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    LIMIT_DOC),
             CURSOR,
             _query("payloads", {"type": "boolean", "default": True},
                    "Include input_data, output_data and metadata")],
            _json(_ref("SearchResult"), "A page of steps"), 400, 503, tag="steps")},
        "/api/replay": {"post": {
            **_operation(
                "Inputs to replay a step",
                "The step's inputs with override_input (when given) in place of its input. "
                "The daemon runs nothing: traceforge_client.replay.replay_step runs your "
                "executor and records a run linked to the original.",
                [], _json(_ref("StepInputs"), "The inputs"), 400, 404, 413, 503, tag="steps"),
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["step_id"], "additionalProperties": False,
                "properties": {"step_id": STEP_ID, "override_input": ANY}}}}},
        }},
        "/api/stats": {"get": _operation(
            "Statistics per step name",
            "Count, error rate, latency mean/p50/p95/p99 (nearest rank), tokens and cost "
            "per step name, and client drop counts by reason.",
            [_query("run_id", RUN_ID, "Only steps of this run"),
             _query("step_name", TEXT, "Only this step name"),
             _query("start_time", EPOCH, "Only steps started at or after this time"),
             _query("end_time", EPOCH, "Only steps started at or before this time"),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "Most frequent step names to report")],
            _json(_ref("Stats"), "The statistics"), 400, 503, tag="daemon")},
        "/api/events": {"get": _operation(
            "Live events (Server-Sent Events)",
            "A text/event-stream of run_start, run_end, step_start and step_end events, "
            "pushed after each commit; each data line is JSON without inputs or outputs. "
            "A slow reader gets an event named dropped with the count it missed.",
            [_query("run_id", RUN_ID, "Only events of this run"),
             _query("keepalive", {"type": "integer", "minimum": 1, "maximum": 300,
                                  "default": 15}, "Seconds between keep-alive comments")],
            {"description": "An endless event stream",
             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            400, tag="daemon")},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "TraceForge API",
            "version": __version__,
            "description": "The read interface to traces stored by the TraceForge daemon. "
            "Every error is JSON: {\"error\": \"...\", \"status\": N}. Beyond loopback, "
            "send the daemon's token as Authorization: Bearer <token>.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "runs"}, {"name": "steps"}, {"name": "daemon"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


SPEC = build_spec()


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
