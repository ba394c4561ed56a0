"""Who may use the HTTP API, checked for every request before any route runs.

Three rules, in this order, on every route (the API, live events, the dashboard's files,
/docs, /openapi.json, and what later routes add, such as POST /v1/traces):

1. **Host.** The ``Host`` header must name this daemon: an IP address (any: a browser
   that sends one reached that address itself, so no other site's page is involved),
   ``localhost``, the ``--http`` host, or a name given with ``--allow-host``. Anything
   else gets **421 Misdirected Request**: the request was meant for another server.
   This is what stops DNS rebinding, where a page on ``evil.example`` points its own
   name at 127.0.0.1 and reads the API as same-origin; its requests still say
   ``Host: evil.example``. The port is not compared: a forwarded port (``ssh -L``) is
   still this daemon. A request without a Host header (HTTP/1.0) is not from a browser
   and passes.
2. **Origin**, for state-changing methods (POST, PUT, PATCH, DELETE): a request whose
   ``Sec-Fetch-Site`` is ``cross-site``, or whose ``Origin`` is not this page's own
   (``http://`` plus the Host header), gets **403**. Browsers send Origin with every
   POST, so a cross-site ``<form>`` or ``text/plain`` fetch, which needs no preflight,
   is refused before it runs; curl and SDK exporters send no Origin and pass.
3. **Token**, when the HTTP listener is beyond loopback: ``Authorization: Bearer
   <token>``, or the session cookie set by ``POST /login`` (``login.py``). Never a
   ``?token=`` in the URL, which would end up in logs and browser history. Without one,
   a page (GET of a path outside the API) is redirected to ``/login``, and the API
   answers **401**. Wrong tokens count against the caller's address: after
   ``MAX_FAILURES`` within ``FAILURE_WINDOW`` seconds it gets **429** until the window
   passes (``FailedAttempts``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections import OrderedDict, deque
from typing import Optional

from aiohttp import hdrs, web
from yarl import URL

from ..settings import Settings, host_name, tokens_match
from .errors import error_response as error

SETTINGS = web.AppKey("settings", Settings)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPEN_PATHS = frozenset({LOGIN_PATH, LOGOUT_PATH})
"""Paths served without the token: the way in, and the way out."""
API_PATHS = ("/api/", "/openapi.json", "/v1/")
"""Paths whose callers are programs: without the token they get 401, never a redirect."""

COOKIE_PREFIX = "traceforge_session_"
"""The session cookie's name is this plus the port the browser used. Cookies are not kept
apart by port, so two daemons on one machine would otherwise log each other out."""
SESSION_MAX_AGE = 30 * 24 * 3600
"""Seconds a login lasts in the browser."""
_SESSION_CONTEXT = b"traceforge dashboard session v1"

MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
MAX_TRACKED_ADDRESSES = 4096
"""Addresses with recent failures that are remembered; the oldest are forgotten first."""


# ---- 1. Host ----

def split_host(header: str) -> tuple[str, Optional[int]]:
    """A Host header as (name, port or None); ValueError if it is not a host."""
    text = header.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1:]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            raise ValueError(header)
    else:
        host, colon, rest = text.partition(":")
        rest = colon + rest
        if rest and not rest[1:].isdigit():
            raise ValueError(header)
    name = host_name(host)
    if not name:
        raise ValueError(header)
    return name, int(rest[1:]) if rest else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(settings: Settings, header: Optional[str]) -> bool:
    """Whether a request with this Host header is meant for this daemon (rule 1)."""
    if header is None:
        return True
    try:
        name, _ = split_host(header)
    except ValueError:
        return False
    if _is_ip(name) or name == "localhost" or name in settings.allow_hosts:
        return True
    return settings.http is not None and name == host_name(settings.http[0])


# ---- 2. Origin ----

def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def same_origin(request: web.Request) -> bool:
    """Whether a state-changing request may run (rule 2)."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    host = request.headers.get(hdrs.HOST)
    try:
        url = URL(origin)
        own_name, own_port = split_host(host or "")
    except (ValueError, TypeError):
        return False
    scheme = request.scheme
    return (url.scheme == scheme and url.host is not None and url.path in ("", "/")
            and host_name(url.host) == own_name
            and (url.port or _default_port(scheme)) == (own_port or _default_port(scheme)))


# ---- 3. Token ----

def session_value(token: str) -> str:
    """The session cookie's value: derived from the token, so a cookie that leaks (it is
    sent to every port of this host) is no ingest token, and a new token ends every
    session."""
    return hmac.new(token.encode("utf-8", "surrogatepass"), _SESSION_CONTEXT,
                    hashlib.sha256).hexdigest()


def cookie_name(request: web.Request) -> str:
    try:
        _, port = split_host(request.headers.get(hdrs.HOST) or "")
    except ValueError:
        port = None
    return f"{COOKIE_PREFIX}{port or _default_port(request.scheme)}"


def has_session(request: web.Request, token: Optional[str]) -> bool:
    given = request.cookies.get(cookie_name(request))
    return token is not None and tokens_match(given, session_value(token))


def bearer(request: web.Request) -> Optional[str]:
    """The token of an ``Authorization: Bearer`` header, else None."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class FailedAttempts:
    """Wrong tokens by client address, so that guessing one is slow."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may present a token again; 0 if it may now."""
        times = self._failures.get(address)
        if not times:
            return 0.0
        now = time.monotonic()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def failed(self, address: str) -> None:
        times = self._failures.pop(address, None) or deque(maxlen=self.limit)
        times.append(time.monotonic())
        self._failures[address] = times  # now the newest
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


ATTEMPTS = web.AppKey("failed_token_attempts", FailedAttempts)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def too_many(wait: float) -> tuple[str, dict]:
    """The message and headers of a 429 for a caller that must wait ``wait`` seconds."""
    seconds = max(1, int(wait + 0.999))
    return (f"too many wrong tokens from this address; try again in {seconds} s",
            {hdrs.RETRY_AFTER: str(seconds)})


def safe_next(target: Optional[str]) -> str:
    """Where to go after logging in: a path on this daemon, never another site."""
    if (not target or not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(ord(c) < 0x20 for c in target) or len(target) > 2000):
        return "/"
    return target


def _check_token(request: web.Request, settings: Settings) -> Optional[web.StreamResponse]:
    """None if the request may go on; else the answer it gets (rule 3)."""
    if request.path in OPEN_PATHS or has_session(request, settings.token):
        return None
    given = bearer(request)
    if given is not None:
        attempts = request.app[ATTEMPTS]
        address = client_address(request)
        wait = attempts.wait(address)
        if wait > 0:
            message, headers = too_many(wait)
            response = error(429, message)
            response.headers.update(headers)
            return response
        if tokens_match(given, settings.token):
            return None
        attempts.failed(address)
        message = "wrong token"
    else:
        message = "this daemon needs its token: send Authorization: Bearer <token>"
    if request.method in ("GET", "HEAD") and not request.path.startswith(API_PATHS):
        login = URL(LOGIN_PATH).with_query(next=safe_next(request.path_qs))
        return web.Response(status=303, headers={hdrs.LOCATION: str(login)})
    if "token" in request.query:
        message += " (a token in the URL is not accepted: it would end up in logs and history)"
    response = error(401, f"{message}, or log in at {LOGIN_PATH}")
    response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="traceforge"'
    return response


@web.middleware
async def guard(request: web.Request, handler):
    """Rules 1 to 3 above, then the route."""
    settings = request.app[SETTINGS]
    if not host_allowed(settings, request.headers.get(hdrs.HOST)):
        return error(421, "this daemon does not answer to that Host; start it with "
                     "--allow-host NAME to use another name for it")
    if request.method in STATE_CHANGING and not same_origin(request):
        return error(403, "a request from another site may not change anything here")
    if settings.http_needs_token:
        refused = _check_token(request, settings)
        if refused is not None:
            return refused
    return await handler(request)


def setup(app: web.Application) -> None:
    app[ATTEMPTS] = FailedAttempts()
