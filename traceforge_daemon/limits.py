"""Connection caps and file descriptors, for the ingest and HTTP listeners alike.

Every ingest and HTTP connection holds a descriptor. At the common default soft limit of
1,024, a couple of thousand connections would exhaust them, and then the listeners can
accept nothing at all, ingest and HTTP alike, with nothing in the log. So the daemon
raises its soft limit to the hard limit at start, and if that is still too small for the
connection caps (``max_connections`` per ingest listener, ``max_http_connections``) plus
RESERVED_FDS (database files, reader processes' pipes, the log), it lowers the caps to fit
and says so in one log line. A connection beyond a cap is refused at once (ingest:
``overloaded`` with ``retry_after_ms``; HTTP: 503) and the refusals are logged, at most
once every REFUSAL_LOG_SECONDS per listener, with their count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterable

from .storage.health import DEGRADED, Reason, recent

logger = logging.getLogger("traceforge.daemon")

OVERLOADED_RETRY_AFTER_MS = 1000
"""How long a client refused at the connection cap is asked to wait before trying again."""
REFUSAL_LOG_SECONDS = 10.0
"""Refusals are logged at most once this often per listener, with the count since."""

RESERVED_FDS = 64
"""Descriptors kept for everything but connections."""
CEILING = 1 << 20
"""Never ask for more than this, even when the hard limit is unlimited."""


def raise_soft_limit() -> int:
    """Set the soft RLIMIT_NOFILE to the hard one; return the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not Unix
        return CEILING
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else min(hard, CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS caps below the hard limit
            logger.info("could not raise the open-file limit from %d: %s", soft, exc)
            return soft
        logger.info("raised the open-file limit from %d to %d", soft, target)
        return target
    return CEILING if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True)
class Caps:
    ingest: int  # per ingest listener
    http: int


def fit(limit: int, ingest: int, ingest_listeners: int, http: int) -> Caps:
    """The caps as configured if they fit in ``limit`` descriptors, else scaled down."""
    wanted = ingest * ingest_listeners + http
    room = max(limit - RESERVED_FDS, 2 * (ingest_listeners + 1))
    if wanted <= room:
        return Caps(ingest, http)
    scale = room / wanted
    caps = Caps(max(1, int(ingest * scale)), max(1, int(http * scale)))
    logger.warning(
        "the open-file limit (%d) is too low for %d ingest connections per listener and %d "
        "HTTP connections; holding at most %d and %d (raise `ulimit -n` to hold more)",
        limit, ingest, http, caps.ingest, caps.http)
    return caps


class ConnectionCap:
    """One listener's cap: its open connections (``admit``/``release``) and its refusals,
    counted and logged at most once every REFUSAL_LOG_SECONDS."""

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
        self.refuse()
        return False

    def release(self) -> None:
        self.open -= 1

    def refuse(self) -> None:
        """Count a connection refused at the cap; say so in the log now and then."""
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


def reasons(caps: Iterable[ConnectionCap]) -> list[Reason]:
    """``connections_refused`` (degraded) for each listener that refused one recently."""
    return [
        Reason("connections_refused", DEGRADED,
               f"the {cap.listener} listener refused {cap.refused} connection(s) at its "
               f"maximum of {cap.limit} ({cap.flag})", cap.last_refused_at)
        for cap in caps if recent(cap.last_refused_at)
    ]
