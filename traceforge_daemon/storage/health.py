"""The daemon's health in one word, with the reasons behind it.

``status`` is one of:

- ``ok``: everything received is being stored;
- ``degraded``: storing works, but something needs a look (storage failed recently and
  recovered, the writer was restarted, the WAL is very large, connections were refused
  at a limit, the disk is nearly full);
- ``failing``: what clients send is not being stored right now (the writer is not
  running, the database file was deleted or replaced, the disk is full, the WAL cannot be
  emptied, transactions fail). Clients keep their data and resend once it recovers.

Each reason is ``{"code", "status", "message", "since"}`` (``since``: Unix time it was
first seen in this episode). ``traceforge-daemon status`` exits 0 only for ``ok``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Optional

OK, DEGRADED, FAILING = "ok", "degraded", "failing"
_RANK = {OK: 0, DEGRADED: 1, FAILING: 2}

RECENT_SECONDS = 300.0
"""A storage error, writer restart or refused connection this recent still shows as
``degraded`` after the trouble has passed, so a glance at health after the fact sees it."""


@dataclass(frozen=True)
class Reason:
    code: str
    status: str  # degraded or failing
    message: str
    since: float

    def as_dict(self) -> dict:
        return {"code": self.code, "status": self.status, "message": self.message,
                "since": round(self.since, 3)}


def recent(at: float, now: Optional[float] = None) -> bool:
    """``at`` (a time.time()) lies within the last RECENT_SECONDS."""
    return at > 0 and (now or time.time()) - at < RECENT_SECONDS


def summarize(reasons: Iterable[Reason]) -> dict:
    """``{"status", "reasons"}``: the worst status among the reasons, worst first."""
    ordered = sorted(reasons, key=lambda r: -_RANK[r.status])
    status = ordered[0].status if ordered else OK
    return {"status": status, "reasons": [r.as_dict() for r in ordered]}
