"""Faults the tests inject into the writer, switched on by ``TRACEFORGE_FAULTS``; unset in
real use, and then nothing here runs.

Some failures cannot be provoked from outside once the rest of the daemon is correct: the
protocol decoder refuses every value SQLite would refuse, and the writer catches every
exception a batch can raise. Their handling (isolating a failing batch, restarting a dead
writer thread, a full database) still has to be proven with a real daemon process, so the
tests name a run and the writer misbehaves on batches that hold it. The variable is a
comma-separated list of:

- ``apply_error=NAME``: applying a batch that holds a run named NAME raises
  OverflowError, as SQLite's binding does for an integer above 2^63 - 1;
- ``writer_crash=NAME``: the writer thread dies (outside any batch) when it takes a batch
  holding a run named NAME; ``writer_crash_once=NAME`` does so only the first time;
- ``max_page_count=N``: the database may not grow beyond N pages (SQLite's own limit), a
  full disk for machines where a test cannot mount a small filesystem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

TRACEFORGE_FAULTS = "TRACEFORGE_FAULTS"


class InjectedCrash(BaseException):
    """Escapes every handler of the writer's loop, as a bug in it would."""


@dataclass
class Faults:
    apply_error: Optional[str] = None
    writer_crash: Optional[str] = None
    writer_crash_once: Optional[str] = None
    max_page_count: Optional[int] = None

    def check_apply(self, items: list) -> None:
        if self.apply_error and _holds_run(items, self.apply_error):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")

    def check_crash(self, items: list) -> None:
        if self.writer_crash and _holds_run(items, self.writer_crash):
            raise InjectedCrash(f"injected writer crash ({self.writer_crash})")
        if self.writer_crash_once and _holds_run(items, self.writer_crash_once):
            self.writer_crash_once = None
            raise InjectedCrash("injected writer crash (once)")


def _holds_run(items: list, name: str) -> bool:
    return any(getattr(event, "name", None) == name and hasattr(event, "metadata_json")
               and not hasattr(event, "step_id")
               for item in items for event in getattr(item, "events", ()))


def from_env() -> Optional[Faults]:
    text = os.environ.get(TRACEFORGE_FAULTS, "").strip()
    if not text:
        return None
    faults = Faults()
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key == "max_page_count":
            faults.max_page_count = int(value)
        elif key in ("apply_error", "writer_crash", "writer_crash_once"):
            setattr(faults, key, value.strip())
        else:
            raise ValueError(f"{TRACEFORGE_FAULTS}: unknown fault {key!r}")
    return faults


ACTIVE = from_env()
"""Read once per process: the daemon's writer threads share one set (``_once`` holds)."""
