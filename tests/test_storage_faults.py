"""The database's disk fills up, its file is deleted under the daemon, or it is damaged
before a start (issue 10, points 3 and 4): the daemon never acks what it did not store,
says why in its log and in /api/health, asks clients to wait instead of hammering, and
resumes by itself once the cause is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, wait_until
from traceforge_daemon.storage import faults
from traceforge_daemon.storage.guard import DISK_RESERVE_BYTES

CLI = [sys.executable, "-m", "traceforge_daemon"]

TRACER = r'''
import json, sys, traceforge_client as tf
steps, pad = int(sys.argv[1]), "x" * int(sys.argv[2])
with tf.trace_run(sys.argv[3]):
    for i in range(steps):
        with tf.trace_step("fill", input_data={"i": i, "pad": pad}):
            pass
print("traced", flush=True)
ok = tf.flush(180)
print(json.dumps({"flushed": ok, **tf.stats()}), flush=True)
'''


def start_tracer(daemon, steps: int, pad: int, run: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRACER, str(steps), str(pad), run],
                            env=daemon.env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(tracer: subprocess.Popen) -> dict:
    stdout, stderr = tracer.communicate(timeout=180)
    assert tracer.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def reasons(health: dict) -> list:
    return [r["code"] for r in health["reasons"]]


def status_exit(daemon) -> int:
    return subprocess.run([*CLI, "status"], env=daemon.env, cwd=ROOT, capture_output=True,
                          timeout=30).returncode


@pytest.fixture
def small_disk(short_tmp):
    """A 64 MiB tmpfs (root only): the database's own filesystem, to fill and free."""
    mount = short_tmp / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace')}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill_until_free(mount: Path, free: int) -> Path:
    filler = mount / "filler"
    info = os.statvfs(mount)
    size = info.f_bavail * info.f_frsize - free
    with open(filler, "wb") as handle:
        handle.truncate(0)
        chunk = b"\0" * (1 << 20)
        while size > 0:
            handle.write(chunk[: min(size, len(chunk))])
            size -= len(chunk)
    return filler


def test_a_full_disk_stops_acks_says_why_and_ingest_resumes_once_space_is_freed(
        daemon_factory, small_disk):
    db = small_disk / "traceforge.db"
    daemon = daemon_factory(("--db", str(db)))
    daemon.db = db
    daemon.start()
    filler = fill_until_free(small_disk, DISK_RESERVE_BYTES + 6 * 1024 * 1024)
    steps = 12_000
    tracer = start_tracer(daemon, steps, 1000, "fill")
    try:
        health = wait_until(lambda: (h := daemon.health())["status"] == "failing" and h,
                            timeout=60, message="health to say failing")
        assert reasons(health) == ["disk_full"]
        message = health["reasons"][0]["message"]
        assert "bytes free on the filesystem of" in message and str(db) in message
        assert status_exit(daemon) == 1
        assert "storage is failing (disk_full)" in daemon.log()
        assert "cannot rollback" not in daemon.log()

        # Refused clients wait retry_after_ms (2 s) before they try again: no tight loop.
        before = daemon.health()["storage_errors"]
        started = time.monotonic()
        wait_until(lambda: daemon.health()["storage_errors"] >= before + 3, timeout=30,
                   message="three more refused attempts")
        assert time.monotonic() - started > 3.0
        assert daemon.health()["connections_total"] < 40

        # A restart does not help while the disk is full, nor does it hurt.
        assert daemon.stop() == 0
        daemon.start()
        wait_until(lambda: daemon.health()["status"] == "failing", timeout=60,
                   message="the restarted daemon to say failing")

        filler.unlink()  # space comes back: no restart needed
        final = finish(tracer)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    assert final["flushed"] is True and final["dropped_total"] == {}
    assert final["reconnects"] < 40, final
    [(count, distinct)] = daemon.query(
        "SELECT count(*), count(DISTINCT step_id) FROM steps WHERE status = 'ok'")
    assert count == distinct == steps
    health = wait_until(lambda: (h := daemon.health())["status"] != "failing" and h)
    assert health["status"] == "degraded" and "storage_errors_recent" in reasons(health)
    assert daemon.query("PRAGMA integrity_check") == [("ok",)]


def test_at_sqlites_own_page_limit_the_real_error_is_reported_and_a_prune_frees_room(
        daemon_factory):
    """Where no filesystem can be mounted, SQLite's max_page_count makes the database
    "full" the same way (SQLITE_FULL); deleting old traces gives the room back."""
    # The old run takes about 1,575 pages; the new one needs about 240 more than are left.
    daemon = daemon_factory(env={faults.TRACEFORGE_FAULTS: "max_page_count=1700"}).start()
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('old'):\n"
                      "    for i in range(1500):\n        with tf.trace_step('s', input_data="
                      "{'pad': 'x' * 2000}):\n            pass\nassert tf.flush(30)")
    tracer = start_tracer(daemon, 2000, 200, "new")
    try:
        health = wait_until(lambda: (h := daemon.health())["status"] == "failing" and h,
                            timeout=60, message="health to say failing")
        assert reasons(health) == ["disk_full"]
        assert "database or disk is full" in health["reasons"][0]["message"]
        assert "SQLITE_FULL" in health["last_storage_error"]["message"]
        assert "cannot rollback" not in daemon.log()
        pruned = subprocess.run([*CLI, "prune", "--max-size", "100KB"], env=daemon.env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert pruned.returncode == 0, pruned.stderr
        assert json.loads(pruned.stdout)["runs_deleted"] >= 1
        final = finish(tracer)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    assert final["flushed"] is True
    assert daemon.query("SELECT count(*) FROM steps s JOIN runs r USING (run_id) "
                        "WHERE r.run_name = 'new'") == [(2000,)]


def test_a_database_deleted_under_the_daemon_is_noticed_and_nothing_more_is_acked(daemon):
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('before'):\n"
                      "    pass\nassert tf.flush(10)")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{daemon.db}{suffix}").unlink()
    tracer = start_tracer(daemon, 200, 10, "after")
    try:
        assert tracer.stdout.readline().strip() == "traced"
        health = wait_until(lambda: (h := daemon.health())["status"] == "failing" and h,
                            timeout=30, message="health to say failing")
        assert reasons(health) == ["database_replaced"]
        assert str(daemon.db) in health["reasons"][0]["message"]
        assert "storage is failing (database_replaced)" in daemon.log()
        assert health["events_committed"] == 2  # only the run before the deletion

        # A restart opens a new database at the path; the client resends what was unacked.
        assert daemon.stop() == 0
        daemon.start()
        final = finish(tracer)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    assert final["flushed"] is True and final["acked_step_ends"] == 200
    assert daemon.query("SELECT count(*) FROM steps WHERE status = 'ok'") == [(200,)]


def _start_refused(daemon) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "start", "--http", "127.0.0.1:0"], env=daemon.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def _one_clear_line(result: subprocess.CompletedProcess, db: Path, words: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("traceforge-daemon:")]
    assert len(said) == 1 and str(db) in said[0] and words in said[0], result.stderr


def test_a_file_that_is_not_a_database_is_refused_in_one_line(daemon_factory):
    daemon = daemon_factory()
    daemon.db.write_bytes(os.urandom(8192))
    _one_clear_line(_start_refused(daemon), daemon.db, "not a database")


def test_a_damaged_database_is_refused_in_one_line(daemon_factory):
    daemon = daemon_factory().start()
    daemon.run_python("import traceforge_client as tf\nwith tf.trace_run('r'):\n"
                      "    for i in range(3000):\n        with tf.trace_step('s', input_data="
                      "{'i': i}):\n            pass\nassert tf.flush(30)")
    assert daemon.stop() == 0
    with open(daemon.db, "r+b") as handle:  # scribble over pages in the middle of the file
        handle.seek(4096 * 20)
        handle.write(b"\xa5" * 4096 * 8)
    _one_clear_line(_start_refused(daemon), daemon.db, "damaged")
