"""GET /api/events: a subscriber sees runs and steps start and end within a second of
their commit, can filter by run, gets keep-alives, and never holds up shutdown. A slow
subscriber's buffer is bounded and its losses are counted and reported."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlparse

from conftest import ROOT
from traceforge_protocol import wire as protocol
from traceforge_daemon.http.api_events import EventHub

LIVE = r'''
import sys
import traceforge_client as tf
with tf.trace_run("live") as run_id:
    with tf.trace_step("slow_step", input_data={"big": "x" * 1000}):
        assert tf.flush(10)
        print("started", run_id, flush=True)
        sys.stdin.readline()
    assert tf.flush(10)
    print("ended", flush=True)
    sys.stdin.readline()
assert tf.flush(10)
'''


class Stream:
    """An open /api/events response, parsed on a thread into (name, data, time)."""

    def __init__(self, base: str, path: str = "/api/events") -> None:
        url = urlparse(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.connection.request("GET", path)
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type").startswith("text/event-stream")
        self.events: "queue.Queue" = queue.Queue()
        self.comments: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert "connected" in self.comments.get(timeout=10)  # subscribed from here on

    def _read(self) -> None:
        name, data = None, []
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.put(line)
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and name:
                    self.events.put((name, json.loads("\n".join(data)), time.monotonic()))
                    name, data = None, []
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass
        self.events.put(("closed", None, time.monotonic()))

    def next(self, name: str, timeout: float) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if got[0] == name:
                return got

    def close(self) -> None:
        try:  # shutdown first: it wakes the reader thread blocked in recv()
            self.connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.connection.close()


def test_a_subscriber_sees_step_start_and_end_within_a_second_of_commit(daemon):
    stream = Stream(daemon.http_url)
    other_run = Stream(daemon.http_url, "/api/events?run_id=" + "0" * 32)
    script = subprocess.Popen([sys.executable, "-c", LIVE], env=daemon.env, cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        word, run_id = script.stdout.readline().split()
        committed = time.monotonic()  # flush() returned: the start is committed
        assert word == "started"
        _, run_start, _ = stream.next("run_start", timeout=5)
        assert run_start["run_id"] == run_id and run_start["run_name"] == "live"
        _, start, arrived = stream.next("step_start", timeout=1)
        assert arrived - committed < 1.0
        assert start["step_name"] == "slow_step" and start["run_id"] == run_id
        assert "input_data" not in start and "big" not in json.dumps(start)
        # a start carries what a start knows; its end, tokens and cost come with step_end
        assert set(start) == {"step_id", "parent_step_id", "step_name", "model", "status",
                              "started_at", "run_id", "type"}
        assert start["status"] == "running" and start["parent_step_id"] is None

        script.stdin.write("\n")
        script.stdin.flush()
        assert script.stdout.readline().strip() == "ended"
        committed = time.monotonic()
        _, end, arrived = stream.next("step_end", timeout=1)
        assert arrived - committed < 1.0
        assert end["step_id"] == start["step_id"] and end["status"] == "ok"
        assert end["latency_ms"] > 0 and end["cost_usd"] == 0.0

        script.stdin.write("\n")
        script.stdin.flush()
        assert script.wait(30) == 0
        _, run_end, _ = stream.next("run_end", timeout=5)
        assert run_end["run_id"] == run_id and run_end["status"] == "success"
        assert other_run.events.empty()  # filtered to a run that never ran
    finally:
        script.kill()
        stream.close()
        other_run.close()


def test_keepalive_comments_arrive_and_an_open_stream_does_not_delay_shutdown(daemon):
    stream = Stream(daemon.http_url, "/api/events?keepalive=1")
    assert "keep-alive" in stream.comments.get(timeout=5)
    started = time.monotonic()
    assert daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 10
    assert stream.next("closed", timeout=5)[0] == "closed"


def _batch(events: list) -> SimpleNamespace:
    return SimpleNamespace(events=events)


def _step_start(number: int) -> protocol.StepStart:
    return protocol.StepStart(run_id="a" * 32, step_id=f"{number:016x}", name="s",
                              start_ns=number)


def test_one_commit_is_one_shared_chunk_and_a_subscriber_too_far_behind_is_cut_off():
    probe = EventHub()
    probe_subscriber = probe.subscribe(None)
    probe.on_commit([_batch([_step_start(n) for n in range(1, 4)])])
    (one_commit, _), = probe_subscriber.take()
    # room for one commit's chunk but not two: the second overflows a subscriber that
    # has not written the first
    hub = EventHub(max_bytes=len(one_commit) * 3 // 2)
    slow, fast = hub.subscribe(None), hub.subscribe(None)
    elsewhere = hub.subscribe("b" * 32)
    hub.on_commit([_batch([_step_start(n) for n in range(1, 4)])])
    (chunk, messages), = slow.take()
    assert messages == 3 and chunk.count(b"event: step_start") == 3
    assert fast.buffer[0][0] is chunk  # the same bytes object: not a copy per subscriber
    assert not elsewhere.buffer and not elsewhere.wakeup.is_set()
    fast.take()
    fast.written(len(chunk))  # the fast one's socket took it; the slow one's did not
    hub.on_commit([_batch([_step_start(n) for n in range(4, 7)])])
    assert slow.overflowed and slow not in hub.subscribers and not slow.buffer
    assert not fast.overflowed and fast in hub.subscribers
    assert hub.stats() == {"subscribers": 2, "messages_sent": 0, "dropped": 3,
                           "disconnected_slow": 1}
