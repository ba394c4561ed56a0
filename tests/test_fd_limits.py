"""File descriptors (issue 10, point 7): at the common soft limit of 1,024 open files, many
held ingest connections or slow HTTP connections must not starve ingest or HTTP. The
daemon raises its soft limit to the hard one, caps connections per listener (with a log
line and a retryable answer), and closes HTTP connections that never finish a request."""

from __future__ import annotations

import resource
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from conftest import wait_until
from protocol_support import PREFACE, frame


def low_soft_limit() -> None:
    """In the daemon's process, before exec: the usual desktop limit of 1,024."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))


def open_files_limit(pid: int) -> int:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


def health_status(daemon) -> int:
    try:
        with urllib.request.urlopen(daemon.http_url + "/api/health", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def hold(path: str) -> tuple:
    """One raw ingest connection that says hello and stays: (socket, the daemon's reply)."""
    from protocol_support import Peer

    peer = Peer(path, timeout=10)
    try:
        peer.send(PREFACE + frame({"type": "hello", "versions": [1]}))
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused at once, before our hello: its answer is still there to read
    return peer, peer.read()


def test_two_thousand_held_ingest_connections_starve_neither_ingest_nor_http(daemon_factory):
    daemon = daemon_factory(preexec_fn=low_soft_limit).start()
    assert open_files_limit(daemon.process.pid) == 4096  # raised from 1,024 at start
    held = [hold(str(daemon.socket)) for _ in range(2000)]
    try:
        replies = [reply for _, reply in held]
        accepted = [r for r in replies if r and r["type"] == "hello_ok"]
        refused = [r for r in replies if r and r["type"] == "error"]
        assert len(accepted) == 1024 and len(refused) == 976
        assert {(r["code"], r["retryable"], r["retry_after_ms"]) for r in refused} == {
            ("overloaded", True, 1000)}
        health = daemon.health()  # HTTP still answers
        assert health["connections"] == 1024 and health["refused_at_limit"] == 976
        assert health["status"] == "degraded"
        assert "connections_refused" in [r["code"] for r in health["reasons"]]
        log = daemon.log()
        assert "refused" in log and "holds its maximum of 1024 (--max-connections)" in log
        for peer, _ in held[:10]:  # ten clients leave: ten new ones get in
            peer.close()
        wait_until(lambda: daemon.health()["connections"] == 1014)
        daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('got in'):\n"
                          "    pass\nassert tf.flush(10)")
    finally:
        for peer, _ in held:
            peer.close()
    assert daemon.query("SELECT run_name FROM runs") == [("got in",)]


def slow_http(base: str) -> socket.socket:
    """An HTTP connection that starts a request and never finishes its headers."""
    url = urlparse(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    return sock


def closed_by_daemon(sock: socket.socket) -> bool:
    """True once the daemon closes the connection (EOF or reset) within the timeout."""
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def test_slow_http_connections_are_capped_and_timed_out_while_ingest_goes_on(daemon_factory):
    daemon = daemon_factory(("--max-http-connections", "20", "--http-header-timeout", "2"),
                            preexec_fn=low_soft_limit).start()
    started = time.monotonic()
    slow = [slow_http(daemon.http_url) for _ in range(20)]
    extra = [slow_http(daemon.http_url) for _ in range(5)]
    try:
        for sock in extra:  # beyond the cap: a 503 at once
            assert sock.recv(65536).startswith(b"HTTP/1.1 503 ")
        assert health_status(daemon) == 503
        # Ingest is another listener: it goes on while HTTP is full.
        daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('meanwhile'):\n"
                          "    pass\nassert tf.flush(10)")
        for sock in slow:  # after the header timeout the daemon closes every one
            sock.settimeout(10)
            assert closed_by_daemon(sock)
        assert time.monotonic() - started < 10
        assert health_status(daemon) == 200
    finally:
        for sock in slow + extra:
            sock.close()
    log = daemon.log()
    assert "refused 1 connection(s) on the HTTP listener: it holds its maximum of 20" in log
    assert daemon.query("SELECT run_name FROM runs") == [("meanwhile",)]


def test_the_health_report_names_its_connection_limit(daemon):
    health = daemon.health()
    assert (health["status"], health["max_connections"], health["refused_at_limit"]) == (
        "ok", 1024, 0)
