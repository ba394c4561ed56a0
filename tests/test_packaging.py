"""TraceForge installed the way users install it: a wheel built from this checkout, in a
new virtual environment, serves the dashboard, every file the page loads, and the docs,
and speaks OTLP with nothing more to install."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from html.parser import HTMLParser

import pytest
from conftest import ROOT, DaemonProcess


class References(HTMLParser):
    """Every local file a page asks for: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("data:", "#")):
                self.found.append(value)


def fetch(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read(), response.headers.get("Content-Type", "")


@pytest.fixture
def installed_daemon(wheel_install, short_tmp):
    daemon = DaemonProcess(short_tmp / "home", python=wheel_install.python, checkout=False)
    daemon.home.mkdir(parents=True)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def test_the_wheel_carries_the_dashboard_and_the_shared_contract(wheel_install):
    import zipfile

    names = set(zipfile.ZipFile(wheel_install.wheel).namelist())
    assert {"traceforge_daemon/web/index.html", "traceforge_daemon/web/app.js",
            "traceforge_daemon/web/style.css", "traceforge_protocol/wire.py",
            "traceforge_daemon/otlp/forwarder.py"} <= names
    assert not any(name.startswith(("tests/", "bench/", "web/")) for name in names)
    modules = {f"traceforge_daemon/web/js/{path.name}"
               for path in (ROOT / "web" / "js").glob("*.js")}
    assert modules and modules <= names, sorted(modules - names)  # every view's module


def test_an_installed_daemon_serves_the_dashboard_every_asset_and_the_docs(installed_daemon):
    base = installed_daemon.http_url
    status, page, kind = fetch(base + "/")
    assert status == 200 and kind.startswith("text/html")
    parser = References()
    parser.feed(page.decode())
    local = [ref for ref in parser.found if not re.match(r"^[a-z]+:", ref)]
    assert any(ref.endswith(".js") for ref in local) and any(ref.endswith(".css") for ref in local)
    for ref in local:
        status, body, _ = fetch(base + ref if ref.startswith("/") else f"{base}/{ref}")
        assert status == 200 and body, ref
    for module in sorted((ROOT / "web" / "js").glob("*.js")):  # what app.js imports
        status, body, kind = fetch(f"{base}/static/js/{module.name}")
        assert status == 200 and body and "javascript" in kind, module.name
    status, docs, kind = fetch(base + "/docs")
    assert status == 200 and kind.startswith("text/html") and b"openapi.json" in docs
    status, spec, _ = fetch(base + "/openapi.json")
    assert status == 200 and b'"openapi"' in spec


def test_the_installed_client_traces_into_the_installed_daemon(installed_daemon):
    installed_daemon.run_python(
        "import traceforge_client as tf\n"
        "with tf.trace_run('from a wheel'):\n"
        "    with tf.trace_step('step') as r:\n"
        "        r['output'] = 1\n"
        "assert tf.flush(10)\n"
    )
    assert installed_daemon.query("SELECT run_name FROM runs") == [("from a wheel",)]
    assert installed_daemon.query("SELECT step_name, status FROM steps") == [("step", "ok")]


def test_an_installed_daemon_exports_otlp_with_no_extra_to_install(installed_daemon):
    from google.protobuf import json_format
    from opentelemetry.proto.trace.v1 import trace_pb2

    installed_daemon.run_python(
        "import traceforge_client as tf\nwith tf.trace_run('r'):\n"
        "    with tf.trace_step('s'):\n        pass\nassert tf.flush(10)\n")
    status, body, _ = fetch(installed_daemon.http_url + "/api/export")
    [line] = body.decode().splitlines()
    traces = json_format.Parse(line, trace_pb2.TracesData())
    [span] = traces.resource_spans[0].scope_spans[0].spans
    assert status == 200 and span.name == "s"
