"""File descriptors: raise the soft limit to the hard one, and fit the connection caps in.

Every ingest and HTTP connection holds a descriptor. At the common default soft limit of
1,024, a couple of thousand connections would exhaust them, and then the listeners can
accept nothing at all, ingest and HTTP alike. So the daemon raises its soft limit to the
hard limit at start, and if that is still too small for the connection caps plus
RESERVED_FDS (database files, reader processes' pipes, the log), it lowers the caps to fit
and says so in one log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger("traceforge.daemon")

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
