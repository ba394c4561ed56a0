"""Where the client sends events and how much it may buffer.

Precedence: an argument to ``init()`` beats the environment variable, which beats the
default. A bad environment value is logged and the default is used instead: tracing
must never stop the user's program from starting.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

from traceforge_protocol.home import TRACEFORGE_TOKEN, Home

from . import redact

logger = logging.getLogger("traceforge")

TRACEFORGE_ADDRESS = "TRACEFORGE_ADDRESS"
"""Where the daemon listens: unix:///path/to.sock or tcp://host:port. Default: the
daemon's default Unix socket, $TRACEFORGE_HOME/daemon.sock"""

TRACEFORGE_DISABLED = "TRACEFORGE_DISABLED"
"""Set to 1 (or true/yes) to make every TraceForge call a no-op. Default: unset."""

TRACEFORGE_HTTP = "TRACEFORGE_HTTP"
"""Base URL of the daemon's HTTP API, for get_storage(). Default: read from the daemon's
state file, else http://127.0.0.1:8742"""

TRACEFORGE_REDACT = "TRACEFORGE_REDACT"
"""Set to 0 (or false/no/off) to send traced values as they are, secrets included, instead
of redacting them on the sender thread (``redact.py``). Default: on."""

TRACEFORGE_TRACEPARENT = "TRACEFORGE_TRACEPARENT"
"""Set by TraceForge for child processes: 00-<run id>-<step id>-01 (W3C traceparent style)."""

DEFAULT_QUEUE_EVENTS = 100_000
MAX_QUEUE_EVENTS = 1_000_000_000
"""Far beyond any memory; keeps the bound a C integer in the compiled queue."""
DEFAULT_SHUTDOWN_TIMEOUT = 2.0


def _env_redact() -> bool:
    """TRACEFORGE_REDACT: on unless it says off; a value that is neither is logged."""
    text = os.environ.get(TRACEFORGE_REDACT, "").strip().lower()
    if text in ("0", "false", "no", "off"):
        return False
    if text not in ("", "1", "true", "yes", "on"):
        logger.warning("%s=%r is not 0 or 1; redacting secrets, the default",
                       TRACEFORGE_REDACT, text)
    return True


def redactor(redact_option: Optional[bool] = None,
             patterns: Optional[redact.Patterns] = None) -> Optional[redact.Redactor]:
    """The Redactor asked for (argument, then TRACEFORGE_REDACT, then on), or None when
    redaction is off. Extra ``patterns`` are checked, and a bad one refused, either way."""
    built = redact.redactor(patterns)
    on = _env_redact() if redact_option is None else bool(redact_option)
    return built if on else None


def _env_disabled() -> bool:
    return os.environ.get(TRACEFORGE_DISABLED, "").strip().lower() in ("1", "true", "yes", "on")


class _Switch:
    """Read once at import (and again by init()), so the hot path checks an attribute."""

    disabled = _env_disabled()


switch = _Switch()


@dataclass(frozen=True)
class Address:
    """A parsed daemon address: a Unix socket path or a TCP host and port."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parse unix:///path or tcp://host:port; raise ValueError saying what is expected."""
    if text.startswith("/") and text.endswith(".sock"):
        return Address("unix", path=text)
    parsed = urlparse(text)
    if parsed.scheme == "unix" and (parsed.path or parsed.netloc):
        return Address("unix", path=(parsed.netloc + parsed.path))
    if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
        return Address("tcp", host=parsed.hostname, port=parsed.port)
    raise ValueError(
        f"bad TraceForge address {text!r}: expected unix:///path/to.sock or tcp://host:port"
    )


@dataclass(frozen=True)
class ClientConfig:
    address: Address
    token: str | None = None
    max_queue_events: int = DEFAULT_QUEUE_EVENTS
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    service: str = ""
    redactor: Optional[redact.Redactor] = None
    """Applied to every batch on the sender thread; None: send values as they are."""


def load_config(address: str | None = None, **options) -> ClientConfig:
    """Build the client configuration from arguments, then the environment, then defaults."""
    if address and _looks_like_database_path(address):
        logger.warning(
            "traceforge.init(%r): the client no longer writes SQLite itself; events go to "
            "the daemon, which owns the database. Start it with "
            "`traceforge-daemon start --db %s`. Using the default daemon address.",
            address,
            address,
        )
        address = None
    text = address or os.environ.get(TRACEFORGE_ADDRESS)
    parsed = None
    if text:
        try:
            parsed = parse_address(text)
        except ValueError as exc:
            if address:  # an explicit argument is a programming error: say so loudly
                raise
            logger.warning("%s; using the default socket", exc)
    if parsed is None:
        parsed = Address("unix", path=str(Home.from_env().socket))
    token = options.pop("token", None) or os.environ.get(TRACEFORGE_TOKEN) or None
    redact_option, patterns = options.pop("redact", None), options.pop("redact_patterns", None)
    unknown = set(options) - {"max_queue_events", "shutdown_timeout", "service"}
    if unknown:
        raise TypeError(f"init() got unknown options: {', '.join(sorted(unknown))}")
    limit = options.get("max_queue_events", DEFAULT_QUEUE_EVENTS)
    if isinstance(limit, bool) or not isinstance(limit, int) \
            or not 1 <= limit <= MAX_QUEUE_EVENTS:
        raise ValueError(
            f"init(max_queue_events={limit!r}): give a whole number of events from 1 to "
            f"{MAX_QUEUE_EVENTS:,}"
        )
    options["max_queue_events"] = int(limit)
    options["redactor"] = redactor(redact_option, patterns)
    return ClientConfig(address=parsed, token=token, **options)


def _looks_like_database_path(text: str) -> bool:
    """``init()`` once took a SQLite path, when the library wrote the database itself;
    accept it so old scripts still run."""
    return "://" not in text and text.endswith((".db", ".sqlite", ".sqlite3"))
