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
        # Not 0 (an all-zero span id is invalid in OpenTelemetry) and not 2**32 - 1, so
        # the counter below can never carry past 64 bits.
        prefix = 1 + int.from_bytes(os.urandom(4), "big") % (2**32 - 2)
        start = int.from_bytes(os.urandom(4), "big") >> 1  # 2**31 ids before the low half wraps
        # itertools.count is atomic under the GIL: no lock on the hot path. The low 32 bits
        # count up from ``start``; a wrap after 2**31 ids would carry into the prefix, which
        # only changes the prefix, never repeats an id within this process.
        self._counter = itertools.count((prefix << 32) | start)

    def next(self) -> str:
        return "%016x" % next(self._counter)


_step_ids = _StepIdSource()
new_step_id = _step_ids.next

# A forked child must not reuse its parent's sequence of step ids.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_step_ids.reset)
