"""Run and step ids, shaped for OpenTelemetry and for fast SQLite inserts.

Run ids are 32 hex characters (an OpenTelemetry trace id): 48 bits of milliseconds
followed by 80 random bits, like UUIDv7, so new runs sort after old ones.

Step ids are 16 hex characters (an OpenTelemetry span id): a 32-bit random prefix
chosen per process, then a 32-bit counter that starts at a random value. Ids from one
process are unique by construction, and each process appends to its own region of
the daemon's step-id index instead of landing on a random B-tree page: time-ordered
keys measured 3.6x faster to insert than random ones (shared/design/performance.md).
"""

from __future__ import annotations

import itertools
import os
import time


def new_run_id() -> str:
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    return f"{millis & 0xFFFF_FFFF_FFFF:012x}{random_bits:020x}"


class _StepIdSource:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        prefix = 0
        while prefix == 0:  # an all-zero span id is invalid in OpenTelemetry
            prefix = int.from_bytes(os.urandom(4), "big")
        self._prefix = f"{prefix:08x}"
        start = int.from_bytes(os.urandom(4), "big") >> 1  # leave room before wrap-around
        # itertools.count is atomic under the GIL: no lock on the hot path.
        self._counter = itertools.count(start)

    def next(self) -> str:
        return "%s%08x" % (self._prefix, next(self._counter) & 0xFFFF_FFFF)


_step_ids = _StepIdSource()
new_step_id = _step_ids.next

# A forked child must not reuse its parent's sequence of step ids.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_step_ids.reset)
