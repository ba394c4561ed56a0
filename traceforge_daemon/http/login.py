"""The browser's way in when the daemon needs its token (its HTTP listener is beyond
loopback): a plain form, no script.

- ``GET /login`` serves ``web/login.html``; ``?next=/path`` is where to go afterwards.
- ``POST /login`` (form field ``token``) compares the token in constant time; the right
  one sets the session cookie and redirects (303) to ``next``. Wrong ones count against
  the caller's address like wrong Bearer tokens (``guard.FailedAttempts``).
- ``POST /logout`` clears the cookie and redirects to ``/login``.

The cookie is ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict`` (no request
another site starts carries it, not even a link: such a visit shows the login page once
more, the price of never depending on the other checks alone), ``Path=/``, ``Secure`` when
served over HTTPS, and lasts ``SESSION_MAX_AGE``. Its value is derived from the token
(``guard.session_value``). The routes sit outside /api and the API description; the
guard's Host and Origin rules apply to them like to every route, so a login form posted
from another site is refused.
"""

from __future__ import annotations

import html
from typing import Optional

from aiohttp import hdrs, web

from ..settings import tokens_match
from .errors import error_response
from .guard import (
    ATTEMPTS,
    LOGIN_PATH,
    LOGOUT_PATH,
    SESSION_MAX_AGE,
    SETTINGS,
    client_address,
    cookie_name,
    has_session,
    safe_next,
    session_value,
    too_many,
)
from .ui import WEB_DIR, DashboardMissing

LOGIN_PAGE = "login.html"
PAGE = web.AppKey("login_page", str)
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _see_other(target: str) -> web.Response:
    return web.Response(status=303, headers={hdrs.LOCATION: target})


def _page(request: web.Request, target: str, message: str = "", status: int = 200,
          headers: Optional[dict] = None) -> web.Response:
    text = (request.app[PAGE].replace("__NEXT__", html.escape(target, quote=True))
            .replace("<!--message-->", html.escape(message)))
    return web.Response(text=text, content_type="text/html", status=status,
                        headers={**_HEADERS, **(headers or {})})


def _refuse(request: web.Request, target: str, status: int, message: str,
            headers: Optional[dict] = None) -> web.Response:
    """A refused login: the form again, saying why, for a browser; JSON for a program."""
    if "text/html" in request.headers.get(hdrs.ACCEPT, ""):
        return _page(request, target, message, status, headers)
    response = error_response(status, message)
    response.headers.update(headers or {})
    return response


async def login_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    target = safe_next(request.query.get("next"))
    if not settings.http_needs_token or has_session(request, settings.token):
        return _see_other(target)
    return _page(request, target)


async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    form = await request.post()
    given, target = form.get("token"), form.get("next")
    target = safe_next(target if isinstance(target, str) else None)
    if not settings.http_needs_token:
        return _see_other(target)
    attempts, address = request.app[ATTEMPTS], client_address(request)
    wait = attempts.wait(address)
    if wait > 0:
        return _refuse(request, target, 429, *too_many(wait))
    if not isinstance(given, str) or not given.strip():
        return _refuse(request, target, 400, "give the daemon's token in the form field 'token'")
    if not tokens_match(given.strip(), settings.token):
        attempts.failed(address)
        return _refuse(request, target, 401, "that is not this daemon's token")
    attempts.succeeded(address)
    response = _see_other(target)
    response.set_cookie(cookie_name(request), session_value(settings.token or ""),
                        max_age=SESSION_MAX_AGE, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)
    return response


async def logout(request: web.Request) -> web.Response:
    """An empty cookie that expires at once, with the attributes it was set with (what
    ``del_cookie`` does, which takes them only from aiohttp 3.10 on)."""
    response = _see_other(LOGIN_PATH)
    response.set_cookie(cookie_name(request), "", max_age=0,
                        expires="Thu, 01 Jan 1970 00:00:00 GMT", path="/", httponly=True,
                        samesite="Strict", secure=request.secure)
    return response


def setup(app: web.Application) -> None:
    """Serve the login routes; after ``ui.setup``, which finds the web directory."""
    path = app[WEB_DIR] / LOGIN_PAGE
    try:
        app[PAGE] = path.read_text(encoding="utf-8")
    except OSError:
        raise DashboardMissing(f"the dashboard's login page ({path}) is missing; reinstall "
                               "traceforge") from None
    app.router.add_get(LOGIN_PATH, login_page)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(LOGOUT_PATH, logout)
