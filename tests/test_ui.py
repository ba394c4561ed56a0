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
    _, _, script = fetch(daemon.http_url + "/static/app.js")
    # the page reads only endpoints the API really has
    for path in ("/api/runs", "/api/steps/", "/api/events"):
        assert path in script


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/nope.js"])
def test_paths_outside_web_are_not_served(daemon, path):
    with pytest.raises(urllib.error.HTTPError) as caught:
        fetch(daemon.http_url + path)
    assert caught.value.code in (403, 404)
