"""Daemon settings: one table that feeds the command line, the defaults and the docs."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from traceforge_protocol import wire
from traceforge_protocol.home import DEFAULT_HTTP_PORT, TRACEFORGE_TOKEN, Home

DEFAULT_HTTP = f"127.0.0.1:{DEFAULT_HTTP_PORT}"


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str


SETTINGS = (
    Setting("db", "$TRACEFORGE_HOME/traceforge.db", "SQLite database file the daemon owns"),
    Setting("socket", "$TRACEFORGE_HOME/daemon.sock", "Unix socket for clients (mode 0600)"),
    Setting("tcp", None, "also take clients on TCP HOST:PORT (off unless given)"),
    Setting("http", DEFAULT_HTTP, "HTTP API and dashboard address; port 0 picks a free port"),
    Setting("token", None, "token clients and HTTP callers must present on non-loopback "
            "listeners (default: TRACEFORGE_TOKEN, else generated into $TRACEFORGE_HOME/token)"),
    Setting("hello_timeout", 5.0, "seconds a new connection has to send its preface and hello"),
    Setting("idle_timeout", 300.0, "seconds a connection may stay silent before it is closed"),
    Setting("body_timeout", 30.0, "seconds a frame body may take to arrive once its length is read"),
    Setting("max_frame_bytes", wire.MAX_FRAME_BYTES, "largest frame accepted"),
    Setting("max_pending_events", 200_000, "events waiting for the writer before reading pauses"),
    Setting("max_pending_bytes", 64 * 1024 * 1024,
            "bytes of frames waiting for the writer (all connections) before reading pauses"),
    Setting("max_unacked_bytes", 16 * 1024 * 1024,
            "bytes of frames one connection may have unacked before it is not read"),
    Setting("max_connections", 1024, "ingest connections per listener; more are refused "
            "with a retryable 'overloaded'"),
    Setting("max_http_connections", 256, "HTTP connections held at once; more get 503"),
    Setting("http_header_timeout", 15.0, "seconds an HTTP connection has to send a complete "
            "request (and may stay idle between requests)"),
    Setting("incomplete_after", 3600.0, "seconds after which a running step of a process the "
            "daemon cannot check (another host, no pid) and that is not connected becomes "
            "incomplete"),
    Setting("retention", None, "delete runs older than this automatically, e.g. 30d "
            "(s, m, h, d, w); off unless given"),
    Setting("retention_size", None, "delete the oldest runs automatically while the data "
            "exceeds this size, e.g. 2GB (KB, MB, GB, KiB, MiB, GiB); off unless given"),
    Setting("log_file", None, "append the log to this file once the daemon holds its locks "
            "(--detach: $TRACEFORGE_HOME/daemon.log); a refused start never writes to it"),
)

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_duration(text: str) -> float:
    """'7d', '12h', '90m', '3600s' or a plain number of seconds -> seconds."""
    value = text.strip().lower()
    unit = value[-1] if value and value[-1] in DURATION_UNITS else "s"
    number = value[:-1] if value and value[-1] in DURATION_UNITS else value
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except ValueError:
        raise ValueError(f"expected a duration such as 7d, 12h or 30m, got {text!r}") from None
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def parse_size(text: str) -> int:
    """'500MB', '2GiB', '1.5gb' or a plain number of bytes -> bytes."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgtib")
    unit = value[len(number):] or "b"
    try:
        size = int(float(number) * SIZE_UNITS[unit])
    except (ValueError, KeyError):
        raise ValueError(f"expected a size such as 500MB or 2GiB, got {text!r}") from None
    if size <= 0:
        raise ValueError(f"a size must be positive, got {text!r}")
    return size


def split_host_port(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); ValueError says what is expected."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_DEFAULT = {setting.name: setting.default for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The daemon's settings; every default comes from SETTINGS above."""

    home: Path
    db: Path
    socket: Path
    http: Optional[tuple[str, int]]
    tcp: Optional[tuple[str, int]] = None
    token: Optional[str] = None
    hello_timeout: float = _DEFAULT["hello_timeout"]
    idle_timeout: float = _DEFAULT["idle_timeout"]
    body_timeout: float = _DEFAULT["body_timeout"]
    max_frame_bytes: int = _DEFAULT["max_frame_bytes"]
    max_pending_events: int = _DEFAULT["max_pending_events"]
    max_pending_bytes: int = _DEFAULT["max_pending_bytes"]
    max_unacked_bytes: int = _DEFAULT["max_unacked_bytes"]
    max_connections: int = _DEFAULT["max_connections"]
    max_http_connections: int = _DEFAULT["max_http_connections"]
    http_header_timeout: float = _DEFAULT["http_header_timeout"]
    incomplete_after: float = _DEFAULT["incomplete_after"]
    retention: Optional[float] = None
    """Seconds (the flag takes 30d and the like)."""
    retention_size: Optional[int] = None
    """Bytes (the flag takes 2GB and the like)."""
    log_file: Optional[Path] = None
    """Where the log goes once the daemon holds its locks (``--log-file``)."""

    @property
    def home_layout(self) -> Home:
        return Home(self.home)

    @property
    def needs_token(self) -> bool:
        exposed = [a for a in (self.tcp, self.http) if a is not None]
        return any(not is_loopback(host) for host, _ in exposed)


def resolve_token(home: Home, given: Optional[str]) -> str:
    """The token from the flag, TRACEFORGE_TOKEN, or a 0600 file made on first use."""
    token = given or os.environ.get(TRACEFORGE_TOKEN)
    if token:
        return token
    path = home.token_file
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token
