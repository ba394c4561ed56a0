"""/openapi.json describes every API route the app serves, real answers have exactly the
shapes it describes, and /docs is a local page: it loads that description and pulls
nothing from another host."""

from __future__ import annotations

import re

import msgspec

from api_support import call
from traceforge_daemon.http.app import create_app
from traceforge_daemon.http.openapi import OPERATIONS, SPEC
from traceforge_daemon.http.operations import Stream
from traceforge_daemon.http.responses import Error
from traceforge_daemon.settings import Settings
from traceforge_daemon.storage.store import Store


def served_routes(tmp_path) -> set[tuple[str, str]]:
    settings = Settings(home=tmp_path, db=tmp_path / "unused.db", socket=tmp_path / "s.sock",
                        http=None)
    app = create_app(settings, Store(settings.db, settings.max_pending_events), dict)
    routes = set()
    for resource in app.router.resources():
        for route in resource:
            if route.method != "HEAD":
                routes.add((route.method.lower(), resource.canonical))
    return routes


def test_every_api_route_the_app_serves_is_described_and_nothing_more(tmp_path):
    served = {(m, p) for m, p in served_routes(tmp_path)
              if p.startswith("/api/") or p in ("/openapi.json", "/docs")}
    described = {(method, path) for path, item in SPEC["paths"].items() for method in item}
    assert described == {route for route in served if route[1].startswith("/api/")}
    assert {("get", "/openapi.json"), ("get", "/docs")} <= served


def test_every_operation_documents_its_parameters_and_error_answers():
    assert SPEC["openapi"] == "3.1.0"  # JSON Schema 2020-12, as msgspec writes it
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] and operation["description"], (method, path)
            assert "200" in operation["responses"]
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path"
                           for p in operation["parameters"]), (path, name)
            if operation["parameters"] or "requestBody" in operation:
                error = operation["responses"]["400"]["content"]["application/json"]
                assert error["schema"] == {"$ref": "#/components/schemas/Error"}
            for parameter in operation["parameters"]:
                assert parameter.get("description"), (path, parameter["name"])


def test_the_daemon_serves_its_description_and_a_docs_page_without_a_cdn(daemon):
    status, spec, _ = call(daemon.http_url, "GET", "/openapi.json")
    assert status == 200 and spec == SPEC
    status, page, headers = call(daemon.http_url, "GET", "/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'fetch("/openapi.json"' in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "http://" not in page and "https://" not in page


def test_real_answers_are_exactly_the_shapes_described(demo):
    """Each answer converts into its route's response Struct, which forbids unknown
    fields: an answer that gains a field the description lacks fails here."""
    a, b, step = demo.ids["a"], demo.ids["b"], demo.ids["failed_step"]
    requests = [
        ("GET", "/api/health", "/api/health", None, None),
        ("GET", "/api/runs", "/api/runs", None, None),
        ("GET", "/api/runs", "/api/runs", {"limit": 1}, None),
        ("GET", "/api/runs/{run_id}", f"/api/runs/{a}", None, None),
        ("GET", "/api/runs/{run_id}", f"/api/runs/{a}", {"payloads": "true"}, None),
        ("GET", "/api/runs/{run_id}/steps", f"/api/runs/{a}/steps", None, None),
        ("GET", "/api/runs/{run_id}/steps", f"/api/runs/{demo.ids['errors']}/steps", None,
         None),
        ("GET", "/api/compare", "/api/compare", {"run_id_a": a, "run_id_b": b}, None),
        ("GET", "/api/steps/{step_id}", f"/api/steps/{step}", None, None),
        ("GET", "/api/steps/{step_id}/inputs", f"/api/steps/{step}/inputs", None, None),
        ("GET", "/api/search", "/api/search", None, None),
        ("GET", "/api/search", "/api/search", {"payloads": "false", "limit": 2}, None),
        ("POST", "/api/replay", "/api/replay", None, {"step_id": step}),
        ("POST", "/api/replay", "/api/replay", None, {"step_id": step, "override_input": [1]}),
        ("GET", "/api/stats", "/api/stats", None, None),
        ("POST", "/api/ingest", "/api/ingest", None, {"events": []}),
        ("POST", "/api/prune", "/api/prune", None, {"older_than_s": 1e9}),  # deletes nothing
    ]
    answers = {(op.method, op.path): op.answer for op in OPERATIONS}
    for method, template, path, query, body in requests:
        status, got, _ = call(demo.url, method, path, query, body=body)
        assert status == 200, (path, got)
        msgspec.convert(got, answers[(method, template)])
    walked = {(method, template) for method, template, *_ in requests}
    assert walked == {key for key, answer in answers.items() if not isinstance(answer, Stream)}
    status, got, _ = call(demo.url, "GET", "/api/runs/" + "0" * 32)
    assert status == 404
    msgspec.convert(got, Error)
