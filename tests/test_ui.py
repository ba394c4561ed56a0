"""The dashboard files are served by the daemon itself, with no build step and no CDN."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def test_index_and_its_assets_are_served_locally(daemon):
    status, kind, html = fetch(daemon.http_url + "/")
    assert status == 200 and kind.startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert sorted(assets) == ["/static/app.js", "/static/style.css"]
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for asset in assets:
        status, kind, body = fetch(daemon.http_url + asset)
        assert status == 200 and body
    # every module app.js imports, and theirs, is served, and none loads from elsewhere
    seen, todo, scripts = set(), ["/static/app.js"], ""
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        status, kind, body = fetch(daemon.http_url + path)
        assert status == 200 and "javascript" in kind, (path, kind)
        assert "http://" not in body and "https://" not in body, path
        scripts += body
        base = path.rsplit("/", 1)[0]
        for module in re.findall(r'from "(\./[^"]+)"', body):
            todo.append(f"{base}/{module[2:]}")
    assert len(seen) >= 10
    # the page reads only endpoints the API really has
    for path in ("/api/runs", "/api/steps/", "/api/events", "/api/compare", "/api/replay",
                 "/api/search", "/api/stats"):
        assert path in scripts, path


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/nope.js"])
def test_paths_outside_web_are_not_served(daemon, path):
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch(daemon.http_url + path)
    assert caught.value.code in (403, 404)
