"""What /openapi.json documents about each parameter is what the daemon enforces: every
documented bound is accepted at the bound and refused one past it, every documented
choice is accepted and nothing else, and every documented length is the cut-off. The
rules of the query string hold on every route: an empty value means "not given", a
parameter given twice or unknown is refused, ``token`` included (tokens never go in URLs).

The cases are read from the description itself, so a limit changed in one place only
cannot pass. Requests go to a real daemon; only the status line and the error body are
read, so the endless event stream can be checked like the rest.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any, Optional

import pytest

from api_support import get
from traceforge_daemon.http.openapi import SPEC

GETS = [(path, item["get"]) for path, item in SPEC["paths"].items() if "get" in item]


def status_of(base: str, path: str, query: Optional[dict[str, Any]] = None,
              ) -> tuple[int, Optional[str]]:
    """(status, the error message of a 4xx) of a GET, without reading a 2xx body."""
    host = urllib.parse.urlparse(base).netloc
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request("GET", path + ("?" + urllib.parse.urlencode(query) if query else ""))
        response = connection.getresponse()
        if 400 <= response.status < 500:
            return response.status, json.loads(response.read())["error"]
        return response.status, None
    finally:
        connection.close()


def concrete(path: str, operation: dict) -> str:
    """``path`` with each path parameter set to its documented example."""
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            example = parameter["schema"]["examples"][0]
            path = path.replace("{%s}" % parameter["name"], example)
    return path


def required_values(operation: dict) -> dict[str, str]:
    return {p["name"]: p["schema"]["examples"][0] for p in operation["parameters"]
            if p["in"] == "query" and p["required"]}


def query_parameters(operation: dict) -> list[dict]:
    return [p for p in operation["parameters"] if p["in"] == "query"]


def text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def edge_cases(parameter: dict) -> list[tuple[str, bool]]:
    """(value, accepted?) pairs at each documented edge of the parameter's schema."""
    schema = parameter["schema"]
    cases = []
    if schema.get("type") == "integer":
        cases += [(str(schema["minimum"]), True), (str(schema["minimum"] - 1), False),
                  (str(schema["maximum"]), True), (str(schema["maximum"] + 1), False)]
    if schema.get("type") == "number":
        cases += [(repr(schema["minimum"]), True), (repr(schema["minimum"] * 1.5), False),
                  (repr(schema["maximum"]), True), (repr(schema["maximum"] * 1.5), False)]
    if "enum" in schema:
        cases += [(value, True) for value in schema["enum"]]
        cases += [("not-" + value, False) for value in schema["enum"]]
    if "maxLength" in schema:
        cases += [("x" * (schema["maxLength"] + 1), False)]
    for example in schema.get("examples", ()):
        cases.append((text(example), True))
    if "default" in schema:
        cases.append((text(schema["default"]), True))
    return cases


CASES = [
    pytest.param(path, operation, parameter, value, accepted,
                 id=f"{path} {parameter['name']}={value[:24]}")
    for path, operation in GETS
    for parameter in query_parameters(operation)
    for value, accepted in edge_cases(parameter)
]


def test_every_bounded_parameter_has_an_edge_case():
    covered = {(path, parameter["name"]) for path, _, parameter, *_ in
               (case.values for case in CASES)}
    for path, operation in GETS:
        for parameter in query_parameters(operation):
            schema = parameter["schema"]
            if {"minimum", "maximum", "enum", "maxLength", "pattern"} & set(schema):
                assert (path, parameter["name"]) in covered, (path, parameter["name"])


@pytest.mark.parametrize("path, operation, parameter, value, accepted", CASES)
def test_a_documented_edge_is_the_enforced_edge(demo, path, operation, parameter, value,
                                                accepted):
    query = {**required_values(operation), parameter["name"]: value}
    status, error = status_of(demo.url, concrete(path, operation), query)
    name = parameter["name"]
    if accepted:
        # 404 for the documented example ids, which no run has; never refused as a value
        assert status != 400 or f"'{name}'" not in error, (status, error)
        assert status < 500
    else:
        assert status == 400 and f"parameter '{name}'" in error, (status, error)


def test_the_run_list_enforces_exactly_the_documented_page_size(demo):
    (limit,) = [p for p in SPEC["paths"]["/api/runs"]["get"]["parameters"]
                if p["name"] == "limit"]
    maximum = limit["schema"]["maximum"]
    assert status_of(demo.url, "/api/runs", {"limit": maximum}) == (200, None)
    status, error = status_of(demo.url, "/api/runs", {"limit": maximum + 1})
    assert status == 400 and str(maximum) in error and "'limit'" in error


@pytest.mark.parametrize("path, operation", GETS, ids=[path for path, _ in GETS])
def test_the_query_string_rules_hold_on_every_route(demo, path, operation):
    where = concrete(path, operation)
    required = required_values(operation)
    ok = status_of(demo.url, where, required)[0]
    assert ok in (200, 404)
    # an empty value means "not given"
    for parameter in query_parameters(operation):
        if not parameter["required"]:
            assert status_of(demo.url, where, {**required, parameter["name"]: ""})[0] == ok
    for unknown in ("no_such_parameter", "token"):
        status, error = status_of(demo.url, where, {**required, unknown: "1"})
        assert status == 400 and f"'{unknown}'" in error and "known" in error
    for parameter in query_parameters(operation):
        twice = urllib.parse.urlencode([(parameter["name"], "1"), (parameter["name"], "1")])
        status, error = status_of(demo.url, where + "?" + twice)
        assert status == 400 and f"'{parameter['name']}'" in error


@pytest.mark.parametrize("spelling, meaning", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("0", False), ("no", False), ("Off", False),
])
def test_booleans_take_every_spelling(demo, spelling, meaning):
    steps = get(demo.url, "/api/search", has_error=spelling)["steps"]
    assert steps and all((step["status"] == "error") == meaning for step in steps)
