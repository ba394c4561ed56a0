"""A schema-driven fuzzer (schemathesis) sends what /openapi.json allows, and what it
forbids, to a real daemon holding real runs: no answer may be a 5xx, and every answer
must match the status codes, content types and bodies the description promises.

The live event stream never ends, so it is left out; test_api_events covers it.
Bounded to a few seconds: a fixed number of examples per operation, derandomized so
a failure repeats.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from traceforge_daemon.http.openapi import SPEC

schema = schemathesis.openapi.from_dict(SPEC).exclude(path="/api/events")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_breaks_the_description(case, demo):
    case.call_and_validate(base_url=demo.url, checks=CHECKS, timeout=30)
