"""The daemon's memory is bounded in bytes, whatever its clients do (issue 10, points 5 and
6): connections sending big frames without waiting for acks are simply not read while the
writer is behind, and live-event subscribers that never read are disconnected instead of
holding everything committed since. Memory is the daemon process's peak RSS (VmHWM)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlparse

from conftest import ROOT, wait_until
from protocol_support import PREFACE, T0, frame

MIB = 1024 * 1024


def peak_rss(daemon) -> int:
    """The daemon's peak resident memory so far, in bytes (Linux)."""
    for line in open(f"/proc/{daemon.process.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def big_frame(seq: int, writer: int) -> bytes:
    """A batch of about 3.9 MB: four steps with about 970 KB of output each."""
    events = [{
        "type": "step_end", "run_id": f"{writer + 1:032x}", "step_id": f"{seq:08x}{i:04x}{writer:04x}",
        "name": "big", "start_ns": T0, "end_ns": T0 + 1, "output_json": '"' + "o" * 970_000 + '"',
    } for i in range(4)]
    return frame({"type": "batch", "seq": seq, "events": events})


def flood(path: str, writer: int, frames: int, done: list) -> None:
    """A raw client that sends ``frames`` big frames as fast as the daemon reads them and
    never reads an ack."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    sock.sendall(PREFACE + frame({"type": "hello", "versions": [1]}))
    for seq in range(1, frames + 1):
        sock.sendall(big_frame(seq, writer))
    done.append(sock)  # kept open: the daemon may still be writing


def test_four_connections_flooding_big_frames_stay_within_the_byte_bounds(daemon):
    baseline = peak_rss(daemon)
    frames, writers, done = 60, 4, []
    threads = [threading.Thread(target=flood, args=(str(daemon.socket), w, frames, done))
               for w in range(writers)]
    for thread in threads:
        thread.start()
    watermark = []  # the queue as the daemon reports it, while the floods run
    while any(t.is_alive() for t in threads):
        health = daemon.health()
        watermark.append(health["bytes_pending"])
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    wait_until(lambda: daemon.health()["events_committed"] == frames * writers * 4,
               timeout=120, message="every big step committed")
    for sock in done:
        sock.close()
    grew = peak_rss(daemon) - baseline
    print(f"queue peak {max(watermark) / MIB:.0f} MiB, grew {grew / MIB:.0f} MiB")
    # 936 MB went through. The bounds: 64 MiB queued for the writer (plus one frame being
    # read per connection), decoded into Python objects of about twice that, plus the
    # SQLite page cache; before them the daemon grew by gigabytes.
    assert max(watermark) <= 64 * MIB + writers * 4 * MIB, max(watermark)
    assert grew < 350 * MIB, f"the daemon grew by {grew / MIB:.0f} MiB"


STUCK_SUBSCRIBERS = 300

STEADY = r'''
import sys, time, traceforge_client as tf
started = time.monotonic()
with tf.trace_run("steady"):
    for i in range(int(sys.argv[1])):
        with tf.trace_step("s", input_data={"i": i}):
            pass
assert tf.flush(120)
print(time.monotonic() - started)
'''


def ingest_seconds(daemon, steps: int) -> float:
    result = subprocess.run([sys.executable, "-c", STEADY, str(steps)], env=daemon.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


def stuck_subscriber(base: str) -> socket.socket:
    """An /api/events stream that is opened and then never read, with a tiny receive
    buffer, so the daemon's writes back up at once."""
    url = urlparse(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
    return sock


def test_subscribers_that_never_read_are_cut_off_and_ingest_keeps_its_pace(daemon_factory):
    daemon = daemon_factory(("--max-http-connections", "400")).start()
    steps = 20_000
    alone = ingest_seconds(daemon, steps)
    stuck = [stuck_subscriber(daemon.http_url) for _ in range(STUCK_SUBSCRIBERS)]
    live = http.client.HTTPConnection(urlparse(daemon.http_url).hostname,
                                      urlparse(daemon.http_url).port, timeout=30)
    try:
        wait_until(lambda: _subscribers(daemon) == STUCK_SUBSCRIBERS,
                   message="every subscriber connected")
        baseline = peak_rss(daemon)
        crowded = ingest_seconds(daemon, steps)
        events = wait_until(lambda: (s := _event_stats(daemon))["disconnected_slow"]
                            == STUCK_SUBSCRIBERS and s, timeout=60,
                            message="every stuck subscriber disconnected")
        assert events["subscribers"] == 0
        grew = peak_rss(daemon) - baseline
        print(f"alone {alone:.2f} s, crowded {crowded:.2f} s, grew {grew / MIB:.0f} MiB")
    finally:
        for sock in stuck:
            sock.close()
        live.close()
    # Each subscriber may hold 4 MiB, but the bytes are one shared copy per commit.
    assert grew < 200 * MIB, f"the daemon grew by {grew / MIB:.0f} MiB"
    assert crowded < 3 * alone + 2, (alone, crowded)


def _event_stats(daemon) -> dict:
    with urllib.request.urlopen(daemon.http_url + "/api/stats", timeout=30) as response:
        return json.load(response)["events"]


def _subscribers(daemon) -> int:
    return _event_stats(daemon)["subscribers"]
