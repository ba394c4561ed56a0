"""/openapi.json describes every API route the app serves, and /docs is a local page:
it loads that description and pulls nothing from another host."""

from __future__ import annotations

import re

from api_support import call
from traceforge_daemon.http.app import create_app
from traceforge_daemon.http.openapi import SPEC
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
    assert SPEC["openapi"].startswith("3.")
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
