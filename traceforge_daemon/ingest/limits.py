"""The bounds on what ingest connections may hold: how many there are per listener, and
how many bytes of unacked frames each may have waiting for the writer.

A connection over its byte bound, or any while the writer queue is over its own bound
(``Store.wait_for_room``), is simply not read: the client's writes back up in its socket
(kernel backpressure). A connection beyond a listener's cap is answered ``overloaded``
(retryable, with ``retry_after_ms``) and closed at once, so descriptors stay for the
connections already open and for HTTP. The bounds themselves are settings
(``max_connections``, ``max_unacked_bytes``, ``max_pending_bytes`` in ``settings.py``).
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("traceforge.daemon")

OVERLOADED_RETRY_AFTER_MS = 1000
"""How long a client refused at the connection cap is asked to wait before trying again."""
REFUSAL_LOG_SECONDS = 10.0
"""Refusals are logged at most once this often per listener, with the count since."""


class ConnectionCap:
    """One listener's connection count against its cap, with a rate-limited log line."""

    def __init__(self, listener: str, limit: int, flag: str) -> None:
        self.listener = listener
        self.limit = limit
        self.flag = flag
        self.open = 0
        self.refused = 0
        self.last_refused_at = 0.0  # time.time()
        self._unlogged = 0
        self._logged_at = float("-inf")

    def admit(self) -> bool:
        """Count one more connection, or refuse it (False) at the cap."""
        if self.open < self.limit:
            self.open += 1
            return True
        self.refused += 1
        self._unlogged += 1
        self.last_refused_at = time.time()
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_SECONDS:
            logger.warning(
                "refused %d connection(s) on the %s listener: it holds its maximum of %d "
                "(%s); clients are told to retry later", self._unlogged, self.listener,
                self.limit, self.flag)
            self._unlogged = 0
            self._logged_at = now
        return False

    def release(self) -> None:
        self.open -= 1
