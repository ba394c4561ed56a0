"""Serves the dashboard: ``web/`` at the top of the source tree, plain files, no build."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def setup_ui(app: web.Application) -> None:
    if not (WEB_DIR / "index.html").exists():
        return  # installed without the web/ folder: the API still works
    app.router.add_get("/", index)
    app.router.add_static("/static", WEB_DIR, follow_symlinks=False, append_version=False)
