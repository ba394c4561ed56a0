"""What run and step ids look like: the one definition for the wire, the store and the API.

Run ids are 32 lowercase hex characters and step ids 16, so they map losslessly onto
OpenTelemetry trace and span ids. Databases written by the single-process TraceForge
library, before the daemon existed, keyed rows by uuid4 strings; the schema migration
keeps those rows, so the HTTP API also accepts that legacy shape when looking ids up.
"""

from __future__ import annotations

import re
from typing import Optional

RUN_ID_LENGTH = 32
STEP_ID_LENGTH = 16
RUN_ID_PATTERN = "^[0-9a-f]{32}$"
STEP_ID_PATTERN = "^[0-9a-f]{16}$"
LEGACY_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

RUN_ID = re.compile(RUN_ID_PATTERN)
STEP_ID = re.compile(STEP_ID_PATTERN)
LEGACY_ID = re.compile(LEGACY_ID_PATTERN)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$")
"""``TRACEFORGE_TRACEPARENT``: W3C traceparent syntax carrying a run id and the step id a
child process attaches to (all zeros: the run itself)."""
NO_STEP = "0" * STEP_ID_LENGTH

_NOT_HEX = str.maketrans("", "", "0123456789abcdef")


def is_hex(text: str) -> bool:
    """True if ``text`` holds only lowercase hex digits (the length is checked elsewhere)."""
    return not text.translate(_NOT_HEX)


def is_run_id(value: str, legacy: bool = False) -> bool:
    return bool(RUN_ID.match(value) or (legacy and LEGACY_ID.match(value)))


def is_step_id(value: str, legacy: bool = False) -> bool:
    return bool(STEP_ID.match(value) or (legacy and LEGACY_ID.match(value)))


def parse_traceparent(value: str) -> Optional[tuple[str, Optional[str]]]:
    """(run id, step id or None) from a ``TRACEFORGE_TRACEPARENT`` value; None if malformed."""
    match = TRACEPARENT.match(value.strip())
    if not match:
        return None
    run_id, step_id = match.groups()
    return run_id, None if step_id == NO_STEP else step_id


def format_traceparent(run_id: str, step_id: Optional[str]) -> str:
    return f"00-{run_id}-{step_id or NO_STEP}-01"
