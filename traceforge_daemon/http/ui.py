"""Serves the dashboard: plain HTML, CSS and JavaScript files, no build step.

The files live in ``web/`` at the top of the repository; the distribution installs that
folder as the package ``traceforge_daemon.web`` (``pyproject.toml`` maps it), so a normal
install, a wheel and an editable checkout all find it the same way. The one other place
looked at is a source checkout the daemon is imported from without being installed
(``python -m traceforge_daemon`` in the repository): its ``web/`` sits beside the package.
A daemon that finds neither refuses to start: the dashboard is part of what it promises.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

WEB_PACKAGE = "traceforge_daemon.web"


class DashboardMissing(Exception):
    """The dashboard's files are not installed; the message says how to fix it."""


CHECKOUT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"


def web_dir() -> Path:
    spec = importlib.util.find_spec(WEB_PACKAGE)
    locations = list((spec.submodule_search_locations or []) if spec else [])
    for location in map(Path, locations + [CHECKOUT_WEB_DIR]):
        if (location / "index.html").is_file():
            return location
    raise DashboardMissing(
        f"the dashboard's files ({WEB_PACKAGE}) are not installed; reinstall traceforge "
        "(`pip install traceforge`, or `pip install .` in a checkout)"
    )


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_DIR] / "index.html",
                            headers={"Cache-Control": "no-cache"})


WEB_DIR = web.AppKey("web_dir", Path)


def setup(app: web.Application) -> None:
    directory = web_dir()
    app[WEB_DIR] = directory
    app.router.add_get("/", index)
    app.router.add_static("/static", directory, follow_symlinks=False, append_version=False)
