"""TraceForge installed the way users install it: a wheel built from this checkout, in a
new virtual environment, serves the dashboard, every file the page loads, and the docs;
without the otlp extra, what needs opentelemetry-proto says what to install."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser

import pytest
from conftest import DaemonProcess


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


def test_without_the_otlp_extra_forwarding_refuses_to_start_and_says_what_to_install(
        wheel_install, short_tmp):
    daemon = DaemonProcess(short_tmp / "home", python=wheel_install.python, checkout=False)
    daemon.home.mkdir(parents=True)
    result = subprocess.run(
        [wheel_install.python, "-m", "traceforge_daemon", "start", "--http", "127.0.0.1:0",
         "--otlp-endpoint", "http://127.0.0.1:4318"],
        env=daemon.env, cwd=daemon.cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "traceforge[otlp]" in line and "Traceback" not in line


def test_without_the_otlp_extra_otlp_ingest_and_export_answer_501_naming_the_extra(
        installed_daemon):
    installed_daemon.run_python(
        "import traceforge_client as tf\nwith tf.trace_run('r'):\n"
        "    with tf.trace_step('s'):\n        pass\nassert tf.flush(10)\n")
    for method, path, body in (
            ("POST", "/v1/traces", b""),
            ("GET", "/api/export", None),
    ):
        request = urllib.request.Request(installed_daemon.http_url + path, data=body,
                                         method=method,
                                         headers={"Content-Type": "application/x-protobuf"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
        assert answer.value.code == 501
        error = json.loads(answer.value.read())
        assert error["status"] == 501 and "traceforge[otlp]" in error["error"]
    status, body, _ = fetch(installed_daemon.http_url + "/api/export?format=flat")
    assert status == 200 and json.loads(body)["operationName"] == "s"  # needs no extra
