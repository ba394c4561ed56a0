"""The API's OpenAPI 3.1 description (GET /openapi.json) and its docs page (GET /docs).

Nothing here is written by hand twice: each operation comes from its route's
declaration (``operations``), its parameters from the fields of the route's parameter
Struct (``schemas``: constraints, defaults, descriptions and examples), and the
request and response bodies from msgspec's JSON Schema of their Structs
(``responses``), which OpenAPI 3.1 takes as it is. The tests check it three ways: every
/api route of the app appears here and nothing more (test_api_docs), the documented
limits are the enforced ones (test_api_docs), and a schema-driven fuzzer (schemathesis)
sends what this document allows and checks the answers against it (test_api_fuzz).
The docs page is local HTML and script: no CDN, works offline.
"""

from __future__ import annotations

import re
from typing import Iterable

import msgspec
from aiohttp import web

from traceforge_protocol.version import __version__

from . import api_admin, api_events, api_ingest, api_runs, api_stats, api_steps
from .docs_page import DOCS_HTML
from .operations import Operation, Stream
from .params import MAX_BODY_BYTES, MAX_BODY_DEPTH
from .responses import Error

routes = web.RouteTableDef()

REF = "#/components/schemas/{name}"
OPERATIONS: tuple[Operation, ...] = (
    *api_runs.routes.operations, *api_steps.routes.operations,
    *api_stats.routes.operations, *api_events.routes.operations,
    *api_ingest.routes.operations, *api_admin.routes.operations,
)
ERRORS = {
    400: "A parameter is malformed; the message names it",
    404: "No run or step has that id",
    413: f"The request body is too large: over {MAX_BODY_BYTES} bytes, or for events over "
         "the ingest frame limit",
    415: "The body is not of the content type the route takes",
    503: "Not now: a query ran past its deadline (narrow the filters), or the daemon cannot "
         "store events at the moment (its writer is not running, or storage is failing: "
         "retry after retry_after_ms)",
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _not_null(schema: dict) -> dict:
    """An optional parameter's schema without its null branch: leaving a query parameter
    out (or empty) is how it is not given, a null cannot be sent."""
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches:
        rest = [branch for branch in branches if branch != {"type": "null"}]
        outer = {key: value for key, value in schema.items() if key != "anyOf"}
        schema = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **outer}
    if schema.get("default", ...) is None:
        del schema["default"]
    return schema


def parameters(operation: Operation) -> list[dict]:
    """The operation's path and query parameters, from the fields of its Struct."""
    if operation.params is None:
        return []
    (_,), defs = msgspec.json.schema_components([operation.params], ref_template=REF)
    struct = defs[operation.params.__name__]
    in_path = set(re.findall(r"{(\w+)}", operation.path))
    found = []
    for name, schema in struct["properties"].items():
        schema = _not_null(dict(schema))
        description = schema.pop("description", None)
        if not description:
            raise ValueError(f"{operation.params.__name__}.{name} needs a description")
        where = "path" if name in in_path else "query"
        required = where == "path" or name in struct.get("required", ())
        parameter = {"name": name, "in": where, "required": required,
                     "description": description, "schema": schema}
        if not required:
            # an empty value (?run_id=) means "not given", as older URLs send it
            parameter["allowEmptyValue"] = True
        found.append(parameter)
    return found


def _answer(operation: Operation, refs: dict) -> dict:
    if isinstance(operation.answer, Stream):
        media, description = operation.answer
        return {"description": description,
                "content": {media: {"schema": {"type": "string"}}}}
    return _json(refs[operation.answer], (operation.answer.__doc__ or "").split("\n")[0])


def _operation(operation: Operation, refs: dict) -> dict:
    described = {
        "summary": operation.summary,
        "description": operation.description,
        "tags": [operation.tag],
        "parameters": parameters(operation),
        "responses": {
            "200": _answer(operation, refs),
            **{str(code): _json(refs[Error], ERRORS[code]) for code in operation.errors},
        },
    }
    if operation.events_body is not None:
        described["requestBody"] = {
            "required": True,
            "description": "JSON events, held to the socket protocol's rules; at most the "
                           "daemon's --max-frame-bytes (4 MiB by default), gzip allowed",
            "content": {"application/json": {"schema": refs[operation.events_body]}},
        }
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "description": f"JSON, at most {MAX_BODY_BYTES} bytes and nested at most "
                           f"{MAX_BODY_DEPTH} levels deep",
            "content": {"application/json": {"schema": refs[operation.body]}},
        }
    return described


def build_spec(operations: Iterable[Operation] = OPERATIONS) -> dict:
    operations = list(operations)
    structs = {Error}
    for operation in operations:
        if not isinstance(operation.answer, Stream):
            structs.add(operation.answer)
        if operation.body is not None:
            structs.add(operation.body)
        if operation.events_body is not None:
            structs.add(operation.events_body)
    ordered = sorted(structs, key=lambda struct: struct.__name__)
    found, schemas = msgspec.json.schema_components(ordered, ref_template=REF)
    refs = dict(zip(ordered, found))
    paths: dict[str, dict] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = (
            _operation(operation, refs))
    tags = list(dict.fromkeys(operation.tag for operation in operations))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TraceForge API",
            "version": __version__,
            "description": "The read interface to traces stored by the TraceForge daemon. "
            "Every error is JSON: {\"error\": \"...\", \"status\": N}. Beyond loopback, "
            "send the daemon's token as Authorization: Bearer <token> (a browser logs in "
            "at /login instead); never in the URL.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {"schemas": schemas},
    }


SPEC = build_spec()


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
