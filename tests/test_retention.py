"""Retention (issue 10): ``traceforge-daemon prune`` and ``--retention`` delete old traces
a small chunk at a time in the writer, so ingest goes on meanwhile; new traces reuse the
freed space, and ``prune --vacuum`` gives it back to the filesystem; health and
``status`` show the database's size."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

from conftest import ROOT, wait_until
from protocol_support import Peer, batch, frame
from traceforge_daemon.storage import schema

CLI = [sys.executable, "-m", "traceforge_daemon"]
DAY = 86_400 * 10**9
NOW = time.time_ns()


def old_runs(runs: int, steps: int, age_days: float, first: int = 1) -> list[bytes]:
    """Frames of complete runs that started ``age_days`` ago, 500 events per batch."""
    start = NOW - int(age_days * DAY)
    frames, seq = [], 0
    for r in range(first, first + runs):
        run_id = f"{r:032x}"
        events = [{"type": "run_start", "run_id": run_id, "name": f"run-{r}", "start_ns": start}]
        events += [{"type": "step_end", "run_id": run_id, "step_id": f"{r:08x}{i:08x}",
                    "name": "s", "start_ns": start, "end_ns": start + 1,
                    "output_json": '"' + "o" * 300 + '"'} for i in range(steps)]
        events.append({"type": "run_end", "run_id": run_id, "name": f"run-{r}",
                       "start_ns": start, "end_ns": start + 2})
        for offset in range(0, len(events), 500):
            seq += 1
            frames.append(frame(batch(*events[offset:offset + 500], seq=seq)))
    return frames


def send_all(daemon, frames: list[bytes]) -> None:
    peer = Peer(str(daemon.socket), timeout=60)
    try:
        peer.handshake()
        peer.send(b"".join(frames))
        last = 0
        while last < len(frames):
            message = peer.read()
            assert message is not None and message["type"] == "ack", message
            last = message["seq"]
    finally:
        peer.close()


def prune(env, *args) -> dict:
    result = subprocess.run([*CLI, "prune", *args], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class AckProbe:
    """A client that sends a small batch every 10 ms and records how long each ack takes."""

    def __init__(self, daemon) -> None:
        self.peer = Peer(str(daemon.socket), timeout=30)
        self.peer.handshake()
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            run_id = f"{10**6 + seq:032x}"
            sent = time.monotonic()
            self.peer.send(frame(batch({"type": "run_start", "run_id": run_id,
                                        "name": "probe", "start_ns": NOW}, seq=seq)))
            assert self.peer.read() == {"type": "ack", "seq": seq}
            self.latencies.append(time.monotonic() - sent)
            time.sleep(0.01)

    def close(self) -> list[float]:
        self.stop.set()
        self.thread.join(30)
        self.peer.close()
        return self.latencies


def test_prune_deletes_old_runs_in_chunks_while_ingest_goes_on_and_space_is_reused(daemon):
    send_all(daemon, old_runs(20, 1000, age_days=10))
    send_all(daemon, old_runs(1, 100, age_days=1, first=100))
    probe = AckProbe(daemon)
    try:
        wait_until(lambda: len(probe.latencies) > 5, message="the probe to get acks")
        result = prune(daemon.env, "--older-than", "7d")
        during = probe.close()
    finally:
        probe.stop.set()
    assert (result["runs_deleted"], result["steps_deleted"]) == (20, 20_000)
    assert result["bytes_after"] < result["bytes_before"] / 3
    assert result["free_bytes_after"] > result["bytes_before"] / 2
    assert daemon.query("SELECT DISTINCT run_name FROM runs WHERE run_name != 'probe'") == [
        ("run-100",)]
    assert daemon.query("SELECT count(*) FROM steps") == [(100,)]
    # Acks kept flowing: the longest wait for one is a chunk, not the whole prune.
    assert max(during) < 1.0, max(during)
    health = daemon.health()
    assert health["retention"]["last_prune"]["runs_deleted"] == 20
    # As much again, newer: it goes into the freed pages, and the file does not grow.
    pages = daemon.query("PRAGMA page_count")[0][0]
    send_all(daemon, old_runs(20, 1000, age_days=1, first=200))
    assert daemon.query("PRAGMA page_count")[0][0] <= pages * 1.05


def test_prune_by_size_deletes_the_oldest_runs_until_the_data_fits(daemon):
    for age in (9, 8, 7, 6):  # four runs, oldest first
        send_all(daemon, old_runs(1, 2000, age_days=age, first=age))
    used = used_bytes(daemon)
    result = prune(daemon.env, "--max-size", str(used // 2))
    assert result["runs_deleted"] in (2, 3)
    kept = [name for (name,) in daemon.query("SELECT run_name FROM runs ORDER BY started_at")]
    assert kept == ["run-7", "run-6"][-len(kept):] and kept[-1] == "run-6"
    assert used_bytes(daemon) <= used // 2


def used_bytes(daemon) -> int:
    """Pages holding data, read from the database itself (health's figure lags by 1 s)."""
    [(pages,)], [(free,)] = daemon.query("PRAGMA page_count"), daemon.query(
        "PRAGMA freelist_count")
    return (pages - free) * 4096


def test_automatic_retention_runs_at_start_and_keeps_recent_runs(daemon_factory):
    daemon = daemon_factory().start()
    send_all(daemon, old_runs(3, 100, age_days=40))
    send_all(daemon, old_runs(1, 10, age_days=2, first=9))
    assert daemon.stop() == 0
    daemon.extra_args = ("--retention", "30d")
    daemon.start()
    health = wait_until(lambda: (h := daemon.health())["retention"]["last_prune"] and h,
                        message="the first automatic prune")
    assert health["retention"]["older_than_s"] == 30 * 86400
    assert health["retention"]["last_prune"]["runs_deleted"] == 3
    assert daemon.query("SELECT run_name FROM runs") == [("run-9",)]


def test_offline_prune_vacuums_the_file_and_refuses_vacuum_under_a_daemon(daemon_factory):
    daemon = daemon_factory()
    daemon.home.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(daemon.db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.migrate(conn)
    old = time.time() - 20 * 86400
    conn.execute("BEGIN")
    for r in range(5):
        conn.execute("INSERT INTO runs (run_id, run_name, started_at, status) VALUES "
                     "(?, 'old', ?, 'success')", (f"{r:032x}", old))
        conn.executemany(
            "INSERT INTO steps (step_id, run_id, step_name, started_at, status, output_data) "
            "VALUES (?, ?, 's', ?, 'ok', ?)",
            [(f"{r:08x}{i:08x}", f"{r:032x}", old, "o" * 500) for i in range(2000)])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size_before = daemon.db.stat().st_size
    result = prune(daemon.env, "--older-than", "7d", "--vacuum")
    assert result["runs_deleted"] == 5 and result["steps_deleted"] == 10_000
    assert daemon.db.stat().st_size < size_before / 5
    assert result["free_bytes_after"] == 0

    daemon.start()
    refused = subprocess.run([*CLI, "prune", "--older-than", "7d", "--vacuum"],
                             env=daemon.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and "--vacuum needs the daemon stopped" in refused.stderr


def test_status_shows_the_database_size(daemon):
    send_all(daemon, old_runs(1, 500, age_days=1))
    result = subprocess.run([*CLI, "status"], env=daemon.env, cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    database = json.loads(result.stdout)["database"]
    assert database["used_bytes"] > 200_000 and database["file_bytes"] + database[
        "wal_bytes"] == database["size_bytes"]
    assert database["disk_free_bytes"] > 0
