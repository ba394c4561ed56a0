"""Shared fixtures: a real daemon process on real sockets with a real SQLite file.

Every test that needs a daemon gets its own TRACEFORGE_HOME in a short temporary
directory (Unix socket paths are limited to about 100 bytes), a daemon started with
``python -m traceforge_daemon start --http 127.0.0.1:0``, and ``env`` to hand to the
processes it traces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import pytest

from traceforge_protocol.home import DaemonState, Home

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.02,
               message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class DaemonProcess:
    """A ``traceforge-daemon start`` subprocess and what a test needs to talk to it."""

    def __init__(self, home: Path, extra_args: tuple = (), python: str = sys.executable,
                 checkout: bool = True, daemon_env: Optional[dict] = None,
                 preexec_fn: Optional[Callable[[], None]] = None) -> None:
        self.home = home
        self.extra_args = extra_args
        self.daemon_env = daemon_env or {}
        """Added to the daemon's environment only (e.g. TRACEFORGE_FAULTS), not clients'."""
        self.preexec_fn = preexec_fn
        """Run in the daemon's process before it starts (e.g. to lower a resource limit)."""
        self.python = python
        self.checkout = checkout
        """True: run the code of this checkout; False: only what ``python`` has installed."""
        self.db = home / "traceforge.db"
        self.socket = home / "daemon.sock"
        self.process: Optional[subprocess.Popen] = None
        self.http_url: Optional[str] = None
        self.log_path = home / "daemon-test.log"

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["TRACEFORGE_HOME"] = str(self.home)
        env["TRACEFORGE_ADDRESS"] = f"unix://{self.socket}"
        env.pop("TRACEFORGE_DISABLED", None)
        env.pop("TRACEFORGE_TRACEPARENT", None)
        if self.http_url:
            env["TRACEFORGE_HTTP"] = self.http_url
        if self.checkout:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        else:
            env.pop("PYTHONPATH", None)
        return env

    @property
    def cwd(self) -> Path:
        return ROOT if self.checkout else self.home

    @property
    def layout(self) -> Home:
        return Home(self.home)

    def state(self) -> Optional[DaemonState]:
        """What the daemon wrote to daemon.json, read as every client reads it."""
        return self.layout.read_state()

    def start(self, wait: bool = True) -> "DaemonProcess":
        if self.layout.state_file.exists():
            self.layout.state_file.unlink()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.python, "-m", "traceforge_daemon", "start", "--http", "127.0.0.1:0",
             *self.extra_args],
            env={**self.env, **self.daemon_env}, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.cwd, preexec_fn=self.preexec_fn,
        )
        log.close()
        if wait:
            state = wait_until(lambda: self._own_state(), timeout=30,
                               message="daemon state file")
            self.http_url = state.http
        return self

    def _own_state(self) -> Optional[DaemonState]:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"daemon exited early:\n{self.log()}")
        state = self.state()
        return state if state is not None and state.pid == self.process.pid else None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def health(self) -> dict:
        with urllib.request.urlopen(self.http_url + "/api/health", timeout=10) as response:
            return json.load(response)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def query(self, sql: str, params: tuple = ()) -> list:
        """Read the database directly, the way an independent checker would."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def run_python(self, code: str, timeout: float = 120, env: Optional[dict] = None,
                   args: tuple = ()) -> subprocess.CompletedProcess:
        """Run ``code`` in a fresh interpreter traced into this daemon; fail on error."""
        result = subprocess.run(
            [self.python, "-c", code, *args], env=env or self.env, cwd=self.cwd,
            capture_output=True, text=True, timeout=timeout,
        )
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture
def short_tmp():
    path = Path(tempfile.mkdtemp(prefix="tf", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_factory(short_tmp):
    """Make daemons in this test's home; all are stopped (gracefully) at teardown."""
    made: list[DaemonProcess] = []

    def make(extra_args: tuple = (), home: Optional[Path] = None, env: Optional[dict] = None,
             preexec_fn: Optional[Callable[[], None]] = None) -> DaemonProcess:
        daemon = DaemonProcess(home or short_tmp / "home", extra_args, daemon_env=env,
                               preexec_fn=preexec_fn)
        daemon.home.mkdir(parents=True, exist_ok=True)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()


@pytest.fixture
def daemon(daemon_factory) -> DaemonProcess:
    """A running daemon; the test fails at teardown if it did not stop cleanly."""
    running = daemon_factory().start()
    yield running
    code = running.stop()
    assert code == 0, f"daemon exited with {code}:\n{running.log()}"


@pytest.fixture
def peers():
    """Raw protocol sockets (tests/protocol_support.Peer), closed at teardown."""
    from protocol_support import Peer

    opened = []

    def connect(address, **options):
        peer = Peer(str(address) if not isinstance(address, tuple) else address, **options)
        opened.append(peer)
        return peer

    yield connect
    for peer in opened:
        peer.close()


@pytest.fixture(scope="module")
def demo():
    """One daemon per test module, holding the known runs of tests/api_support.py."""
    from api_support import PopulatedDaemon

    populated = PopulatedDaemon()
    yield populated
    populated.close()


@pytest.fixture(scope="session")
def wheel_install(tmp_path_factory):
    """A wheel built from this checkout, installed in a new virtual environment, as a user
    installs TraceForge (tests/wheel_support.py). Built once per test session."""
    from wheel_support import WheelInstall

    return WheelInstall.build(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def dash():
    """One daemon holding the dashboard tests' runs, the 50,000-step one among them
    (tests/dashboard_support.py); the dashboard modules share it."""
    from dashboard_support import DashboardDaemon

    populated = DashboardDaemon()
    yield populated
    populated.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, one per browser test module. Not per session:
    Playwright's sync API keeps its event loop marked as running on the main thread while
    it is open, so a later module's ``asyncio.run()`` would fail."""
    from dashboard_support import CHROMIUM

    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run should have installed it")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A new page in its own browser context at 1280x800, dark theme; the test fails if
    the page raised an error or logged one to its console."""
    from dashboard_support import new_page

    opened = new_page(browser)
    yield opened
    opened.context.close()
    assert not opened.errors, opened.errors
