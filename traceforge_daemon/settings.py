"""Daemon settings: one table that feeds the command line, the defaults and the docs."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from traceforge_protocol import wire
from traceforge_protocol.home import DEFAULT_HTTP_PORT, TRACEFORGE_TOKEN, Home

DEFAULT_HTTP = f"127.0.0.1:{DEFAULT_HTTP_PORT}"

MIN_TOKEN_CHARS = 16
"""The shortest token a daemon with a listener beyond loopback starts with: anyone who can
reach such a listener may guess, so a token must hold enough randomness. The generated
one is 43 characters (32 random bytes, ``secrets.token_urlsafe``)."""

TRACEFORGE_ALLOW_HOSTS = "TRACEFORGE_ALLOW_HOSTS"
"""Host names, separated by commas, the HTTP API answers to besides localhost, IP
addresses and the --http host; added to the --allow-host flags. Default: none."""


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
            "listeners, at least 16 characters (default: TRACEFORGE_TOKEN, else generated "
            "into $TRACEFORGE_HOME/token)"),
    Setting("allow_host", (), "a host name the HTTP API answers to besides localhost, IP "
            "addresses and the --http host (repeatable; also TRACEFORGE_ALLOW_HOSTS, "
            "comma-separated); a request naming any other host gets 421, which stops "
            "DNS-rebinding pages from reading traces"),
    Setting("hello_timeout", 5.0, "seconds a new connection has to send its preface and hello"),
    Setting("idle_timeout", 300.0, "seconds a connection may stay silent before it is closed"),
    Setting("body_timeout", 30.0, "seconds a frame body may take to arrive once its length is read"),
    Setting("max_frame_bytes", wire.MAX_FRAME_BYTES, "largest frame accepted"),
    Setting("max_pending_events", 200_000, "events waiting for the writer before reading pauses"),
    Setting("otlp_endpoint", None, "forward every ended step to this OTLP/HTTP endpoint, e.g. "
            "http://collector:4318 (/v1/traces is added to a URL without a path); off unless "
            "given"),
    Setting("otlp_header", (), "a header for the OTLP endpoint, NAME=VALUE (repeatable), e.g. "
            "'Authorization=Bearer abc'"),
    Setting("otlp_protocol", "http/protobuf", "what to forward as: http/protobuf or http/json"),
    Setting("otlp_batch_spans", 512, "most spans per forwarded request"),
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

OTLP_PROTOCOLS = ("http/protobuf", "http/json")

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
    allow_hosts: tuple[str, ...] = ()
    """Host names (lowercase) the HTTP API answers to besides the ones always allowed."""
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
    otlp_endpoint: Optional[str] = None
    otlp_headers: tuple[tuple[str, str], ...] = ()
    otlp_protocol: str = _DEFAULT["otlp_protocol"]
    otlp_batch_spans: int = _DEFAULT["otlp_batch_spans"]

    @property
    def home_layout(self) -> Home:
        return Home(self.home)

    @property
    def needs_token(self) -> bool:
        exposed = [a for a in (self.tcp, self.http) if a is not None]
        return any(not is_loopback(host) for host, _ in exposed)

    @property
    def http_needs_token(self) -> bool:
        """HTTP callers must present the token: the HTTP listener is beyond loopback."""
        return self.http is not None and not is_loopback(self.http[0])


def host_name(text: str) -> str:
    """A host as compared: lowercase, without IPv6 brackets or a final dot."""
    name = text.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def allowed_host_names(flags: Optional[list], env: Optional[str]) -> tuple[str, ...]:
    """The --allow-host names and TRACEFORGE_ALLOW_HOSTS's, checked; ValueError says why."""
    names = list(flags or []) + [part for part in (env or "").split(",") if part.strip()]
    allowed = []
    for text in names:
        name = host_name(text)
        if not name or any(c in name for c in " /:@?#[]*,\\") or len(name) > 253:
            raise ValueError(f"--allow-host {text!r}: give one host name such as "
                             "tracebox.local, without a port, a scheme or a wildcard")
        allowed.append(name)
    return tuple(dict.fromkeys(allowed))


def check_token(token: str) -> None:
    """Raise ValueError unless ``token`` is long enough for a listener beyond loopback."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"the token is {len(token)} characters; a daemon listening beyond loopback "
            f"needs one of at least {MIN_TOKEN_CHARS} (leave --token and TRACEFORGE_TOKEN "
            "unset to use a generated one)")


def tokens_match(given: Optional[str], expected: Optional[str]) -> bool:
    """True if ``given`` is the token, compared in constant time; never for no token."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def otlp_url(text: str) -> str:
    """An OTLP/HTTP traces URL from what --otlp-endpoint was given: a base URL (no path)
    gets /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT does; ValueError says what is wrong."""
    parsed = urllib.parse.urlsplit(text.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"--otlp-endpoint must be an http:// or https:// URL, got {text!r}")
    if parsed.path in ("", "/"):
        parsed = parsed._replace(path="/v1/traces")
    return urllib.parse.urlunsplit(parsed)


def otlp_header(text: str) -> tuple[str, str]:
    """NAME=VALUE (NAME: VALUE also reads) as a header pair; ValueError if it is not one."""
    name, sep, value = text.partition("=")
    if not sep or ":" in name:
        name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or any(
            c in value for c in "\r\n"):
        raise ValueError(f"--otlp-header must be NAME=VALUE, got {text!r}")
    return name, value.strip()


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
