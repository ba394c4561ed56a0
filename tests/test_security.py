"""Who may reach the daemon's data (issue 10, findings 11 and 13), against real daemons:

- a request naming a host that is not this daemon is refused on every route (421), so a
  DNS-rebinding page cannot read traces; IP addresses, localhost and --allow-host names
  are served;
- a state-changing request from another site (its Origin, or Sec-Fetch-Site) is refused
  (403) before it runs; one without an Origin (curl, SDKs) runs;
- beyond loopback the token is required, in a header or the login cookie, never in the
  URL; pages redirect to /login, the API answers 401, wrong tokens are rate-limited;
- a daemon beyond loopback refuses to start with a short token, and TCP clients with a
  wrong or short token are refused.

Requests go through http.client so that Host, Origin and cookies are exactly as written.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse

import pytest
from conftest import ROOT
from protocol_support import HELLO, PREFACE, frame

from traceforge_daemon.http import guard
from traceforge_daemon.settings import MIN_TOKEN_CHARS

TOKEN = "a-test-token-of-32-characters-xx"
TRACED = ("import traceforge_client as tf\nwith tf.trace_run('secret run'):\n"
          "    with tf.trace_step('step one', input_data={'q': 1}):\n        pass\n"
          "assert tf.flush(10)\n")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def call(port: int, method: str, path: str, headers: dict | None = None,
         body: bytes | str | None = None) -> tuple[int, dict, bytes]:
    """One request with exactly these headers; the status, headers and body (an event
    stream's body is not read)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body,
                           headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        streaming = answer.get("content-type", "").startswith("text/event-stream")
        return response.status, answer, b"" if streaming else response.read()
    finally:
        connection.close()


def error_of(body: bytes, status: int) -> str:
    decoded = json.loads(body)
    assert set(decoded) == {"error", "status"} and decoded["status"] == status, decoded
    return decoded["error"]


EVERY_KIND_OF_ROUTE = [
    ("GET", "/api/runs"), ("GET", "/api/health"), ("GET", "/api/events"), ("GET", "/"),
    ("GET", "/static/app.js"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/login"),
    ("GET", "/no/such/page"), ("POST", "/api/replay"), ("POST", "/v1/traces"),
    ("POST", "/api/ingest"), ("POST", "/login"),
]


def test_a_foreign_host_header_is_refused_on_every_route(daemon_factory, monkeypatch):
    monkeypatch.setenv("TRACEFORGE_ALLOW_HOSTS", "second.example, third.example")
    daemon = daemon_factory(("--allow-host", "TraceBox.Local")).start()
    port = port_of(daemon.http_url)
    daemon.run_python(TRACED)
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                 "localhost.evil.example", "evil.example@127.0.0.1", "", "[::1"):
        for method, path in EVERY_KIND_OF_ROUTE:
            status, _, body = call(port, method, path, {"Host": host})
            assert status == 421, (host, method, path)
            error_of(body, 421)
    # IP addresses (any port: a forwarded one is still us), localhost, named hosts
    for host in (f"127.0.0.1:{port}", "127.0.0.1", "127.0.0.1:9999", f"[::1]:{port}",
                 "10.1.2.3", f"localhost:{port}", "LOCALHOST.", "tracebox.local",
                 f"second.example:{port}", "third.example"):
        status, _, body = call(port, "GET", "/api/runs", {"Host": host})
        assert status == 200 and b"secret run" in body, host
    assert call(port, "GET", "/api/events", {"Host": "tracebox.local"})[0] == 200
    # on loopback no token is needed: the login page sends the browser on
    status, headers, _ = call(port, "GET", "/login?next=/docs")
    assert (status, headers["location"]) == (303, "/docs")


def test_a_bad_allowed_host_name_is_refused_at_start(short_tmp):
    for name in ("*.example", "host:8742", "http://host", "a b"):
        result = start_daemon(short_tmp / "home", "--http", "127.0.0.1:0", "--allow-host", name)
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("traceforge-daemon: --allow-host")


def test_a_wildcard_bind_still_refuses_foreign_hosts_and_needs_the_token(daemon_factory):
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", TOKEN)).start()
    port = port_of(daemon.http_url)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert call(port, "GET", "/api/health", {"Host": "evil.example", **bearer})[0] == 421
    assert call(port, "GET", "/api/health", {"Host": f"192.168.7.7:{port}"})[0] == 401
    assert call(port, "GET", "/api/health", {"Host": f"192.168.7.7:{port}", **bearer})[0] == 200


def replay_body(daemon) -> str:
    [(step_id,)] = daemon.query("SELECT step_id FROM steps")
    return json.dumps({"step_id": step_id})


def test_a_state_changing_request_from_another_site_is_refused_before_it_runs(daemon):
    daemon.run_python(TRACED)
    port = port_of(daemon.http_url)
    body = replay_body(daemon)
    plain = {"Content-Type": "text/plain"}  # what a cross-site form or fetch can send
    for refused in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://localhost:{port + 1}"},  # same site, other port
                    {"Origin": f"https://127.0.0.1:{port}"},
                    {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "cross-site"}):
        status, _, answer = call(port, "POST", "/api/replay", {**plain, **refused}, body)
        assert status == 403, refused
        error_of(answer, 403)
        assert call(port, "POST", "/login", {**refused, "Content-Type":
                    "application/x-www-form-urlencoded"}, "token=x")[0] == 403
    # its own origin, and no Origin at all (curl, SDK exporters), are served
    for allowed in ({"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": f"http://LOCALHOST:{port}", "Host": f"localhost:{port}"}, {}):
        status, _, answer = call(port, "POST", "/api/replay",
                                 {"Content-Type": "application/json", **allowed}, body)
        assert status == 200 and json.loads(answer)["step_name"] == "step one", allowed
    # reading is not state-changing: another site's page cannot read the answer anyway
    assert call(port, "GET", "/api/runs", {"Origin": "http://evil.example"})[0] == 200


@pytest.fixture
def exposed(daemon_factory):
    """A daemon whose HTTP API listens beyond loopback, with a known token and one run."""
    daemon = daemon_factory(("--http", "0.0.0.0:0", "--token", TOKEN)).start()
    daemon.run_python(TRACED)
    return daemon


def login(port: int, token: str, next_path: str = "/", accept: str = "*/*"):
    form = urllib.parse.urlencode({"token": token, "next": next_path})
    return call(port, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                         "Accept": accept}, form)


def test_beyond_loopback_the_token_is_taken_from_a_header_or_the_login_cookie_only(exposed):
    port = port_of(exposed.http_url)
    # no token: pages go to the login page, the API answers 401
    for path in ("/", "/static/app.js", "/docs", "/index.html?x=1"):
        status, headers, _ = call(port, "GET", path)
        assert status == 303, path
        where = urllib.parse.urlsplit(headers["location"])
        assert (where.path, urllib.parse.parse_qs(where.query)) == ("/login", {"next": [path]})
    for method, path in (("GET", "/api/runs"), ("GET", "/api/events"), ("GET", "/openapi.json"),
                         ("POST", "/v1/traces"), ("POST", "/api/ingest")):
        status, headers, body = call(port, method, path)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
        error_of(body, 401)
    # a token in the URL is never accepted; wrong and short ones are refused
    assert call(port, "GET", f"/api/runs?token={TOKEN}")[0] == 401
    for wrong in ("a", TOKEN[:-1], TOKEN + "x", "é" * 40, ""):
        assert call(port, "GET", "/api/runs", {"Authorization": f"Bearer {wrong}"})[0] == 401
    status, _, body = call(port, "GET", "/api/runs", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b"secret run" in body

    # the login form: a wrong token is refused, the right one sets the session cookie
    status, _, body = login(port, "not the token")
    assert status == 401
    error_of(body, 401)
    status, _, page = login(port, "not the token", accept="text/html")
    assert status == 401 and b"not this daemon" in page and b'action="/login"' in page
    status, headers, _ = login(port, TOKEN, next_path="/docs")
    assert status == 303 and headers["location"] == "/docs"
    cookie = headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=strict" in cookie.lower() and TOKEN not in cookie
    session = cookie.split(";")[0]
    assert session.startswith(f"{guard.COOKIE_PREFIX}{port}=")
    for path in ("/", "/static/app.js", "/docs", "/openapi.json", "/api/runs"):
        assert call(port, "GET", path, {"Cookie": session})[0] == 200, path
    assert call(port, "GET", "/api/events", {"Cookie": session})[0] == 200
    name = session.split("=")[0]
    assert call(port, "GET", "/api/runs", {"Cookie": f"{name}={'0' * 64}"})[0] == 401
    # a login does not leak into the URL: next must stay on this daemon
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert login(port, TOKEN, next_path=elsewhere)[1]["location"] == "/"
    # logging out clears the cookie
    status, headers, _ = call(port, "POST", "/logout", {"Cookie": session})
    assert status == 303 and headers["location"] == "/login"
    assert headers["set-cookie"].startswith(f"{name}=\"\"") or "max-age=0" in (
        headers["set-cookie"].lower())


def test_wrong_tokens_are_rate_limited_per_address(exposed):
    port = port_of(exposed.http_url)
    status, headers, _ = login(port, TOKEN)
    session = headers["set-cookie"].split(";")[0]
    for _ in range(guard.MAX_FAILURES):
        assert call(port, "GET", "/api/runs", {"Authorization": "Bearer wrong"})[0] == 401
    for attempt in (lambda: call(port, "GET", "/api/runs", {"Authorization": f"Bearer {TOKEN}"}),
                    lambda: login(port, TOKEN)):
        status, headers, body = attempt()
        assert status == 429 and int(headers["retry-after"]) >= 1
        error_of(body, 429)
    # a session already opened is not a guess, and goes on working
    assert call(port, "GET", "/api/runs", {"Cookie": session})[0] == 200


def test_a_generated_token_protects_a_daemon_started_beyond_loopback_without_one(
        daemon_factory):
    daemon = daemon_factory(("--http", "0.0.0.0:0")).start()
    port = port_of(daemon.http_url)
    token = daemon.layout.token_file.read_text().strip()
    assert len(token) >= 43 and daemon.layout.token_file.stat().st_mode & 0o077 == 0
    assert call(port, "GET", "/api/runs")[0] == 401
    assert call(port, "GET", "/api/runs", {"Authorization": f"Bearer {token}"})[0] == 200


def start_daemon(home, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traceforge_daemon", "start", *args],
                          env={**(env or {}), "TRACEFORGE_HOME": str(home),
                               "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_daemon_beyond_loopback_refuses_to_start_with_a_short_token(short_tmp):
    short = "a" * (MIN_TOKEN_CHARS - 1)
    for args, env in ((("--http", "0.0.0.0:0", "--token", "a"), None),
                      (("--http", "off", "--tcp", "0.0.0.0:0", "--token", short), None),
                      (("--http", "[::]:0"), {"TRACEFORGE_TOKEN": short})):
        result = start_daemon(short_tmp / "home", *args, env=env)
        assert result.returncode == 1, result
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("traceforge-daemon: ") and str(MIN_TOKEN_CHARS) in line
    assert not (short_tmp / "home" / "daemon.json").exists()


def test_wrong_and_short_tokens_are_refused_on_tcp(daemon_factory, peers):
    daemon = daemon_factory(("--tcp", "0.0.0.0:0", "--token", TOKEN)).start()
    address = ("127.0.0.1", int(daemon.state().tcp.rsplit(":", 1)[1]))
    for token in ("a", TOKEN[:MIN_TOKEN_CHARS - 1], TOKEN[:-1] + "y", "é" * 32, ""):
        peer = peers(address)
        peer.send(PREFACE + frame({**HELLO, "token": token}))
        [error] = peer.read_until_closed()
        assert (error["code"], error["retryable"]) == ("auth_failed", False), token
    assert peers(address).handshake(token=TOKEN)["version"] == 1
    assert "Traceback" not in daemon.log()
