"""What both benchmarks share: the payloads, a daemon subprocess, machine facts, stats.

Nothing here is imported by TraceForge itself; the benchmarks run on demand only.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent

# "Small input and output": what every benchmark step carries, in every variant.
SMALL_INPUT = {"query": "What is the capital of France?", "top_k": 3}
SMALL_OUTPUT = {"answer": "Paris", "confidence": 0.97}
INPUT_JSON = json.dumps(SMALL_INPUT, separators=(",", ":"))
OUTPUT_JSON = json.dumps(SMALL_OUTPUT, separators=(",", ":"))
TOKENS_IN, TOKENS_OUT = 89, 95

GROUP = 10
"""Steps are traced in groups: one outer step with GROUP - 1 inner steps nested in it."""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict:
    """Facts to print beside every figure."""
    facts = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_1_5_15": load(),
    }
    try:
        import msgspec

        facts["msgspec"] = msgspec.__version__
    except ImportError:
        pass
    source = ROOT / ".bench-source"  # written when the code is a snapshot (see README)
    if source.exists():
        facts["code"] = source.read_text().strip()
        return facts
    try:
        facts["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        ).stdout.strip()
        # What is measured is the working tree: name the code files that differ from HEAD.
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "traceforge_client", "traceforge_daemon"],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout.split("\n")
        facts["uncommitted"] = sorted(line[3:] for line in status if line.strip())
    except OSError:
        pass
    return facts


def short_tmp(prefix: str) -> Path:
    """A short directory under /tmp: Unix socket paths are limited to about 100 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def percentile(sorted_values, fraction: float):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def median(values):
    return statistics.median(values) if values else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Daemon:
    """``python -m traceforge_daemon start --http 127.0.0.1:0`` in a home of its own."""

    def __init__(self, home: Path, whatif: Optional[str] = None) -> None:
        self.home = home
        self.whatif = whatif  # changes for bench/whatif_daemon.py; None runs the real daemon
        self.db = home / "traceforge.db"
        self.socket = home / "daemon.sock"
        self.process: Optional[subprocess.Popen] = None
        self.http: Optional[str] = None

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["TRACEFORGE_HOME"] = str(self.home)
        env["TRACEFORGE_ADDRESS"] = f"unix://{self.socket}"
        env.pop("TRACEFORGE_DISABLED", None)
        env.pop("TRACEFORGE_TRACEPARENT", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def start(self, timeout: float = 60.0) -> "Daemon":
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "daemon.log", "ab")
        launcher = ["-m", "traceforge_daemon"]
        if self.whatif:
            launcher = [str(ROOT / "bench" / "whatif_daemon.py"), self.whatif]
        self.process = subprocess.Popen(
            [sys.executable, *launcher, "start", "--http", "127.0.0.1:0",
             "--log-level", "WARNING"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.log()}")
            try:
                state = json.loads((self.home / "daemon.json").read_text())
            except (OSError, ValueError):
                state = None
            if state and state.get("pid") == self.process.pid:
                self.http = state["http"]
                return self
            time.sleep(0.02)
        raise RuntimeError(f"daemon did not come up within {timeout} s:\n{self.log()}")

    def health(self) -> dict:
        with urllib.request.urlopen(self.http + "/api/health", timeout=30) as response:
            return json.load(response)

    def wait_committed(self, expected: int, timeout: float, interval: float = 0.01) -> float:
        """Poll /api/health until events_committed >= expected; return time.time() then."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if health["events_committed"] >= expected:
                return time.time()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {health['events_committed']} of {expected} events committed "
                    f"after {timeout} s: {health}"
                )
            time.sleep(interval)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def log(self) -> str:
        try:
            return (self.home / "daemon.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
