"""The API's reader processes: read-only connections of their own that never hold up
the writer, outside the daemon's process, and a deadline that interrupts a runaway query."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import wait_until
from traceforge_daemon.storage.readers import QueryTimeout, Readers, snapshot
from traceforge_daemon.storage.writer import open_writer_connection

# Jobs are top-level functions: they are sent to the reader processes.


def where_am_i(conn):
    return os.getpid()


def run_names(conn):
    return conn.execute("SELECT run_name FROM runs").fetchall()


def try_to_write(conn):
    conn.execute("INSERT INTO runs (run_id, run_name, started_at) VALUES ('x', 'x', 1)")


def select_one(conn):
    return conn.execute("SELECT 1").fetchone()


def count_forever(conn):
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT COUNT(*) FROM n")
    return conn.execute(endless).fetchone()


def long_read(conn, signals: str):
    """Hold a read snapshot until the test drops a 'release' file beside ``signals``."""
    inside, release = Path(signals) / "inside", Path(signals) / "release"
    with snapshot(conn):
        before = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        inside.touch()
        deadline = time.monotonic() + 20
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        again = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    after = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    return before, again, after


@pytest.fixture
def db(tmp_path):
    writer = open_writer_connection(str(tmp_path / "reader.db"))
    writer.execute("INSERT INTO runs (run_id, run_name, started_at) VALUES ('r1', 'first', 1)")
    yield tmp_path / "reader.db", writer
    writer.close()


def run(reader: Readers, fn, *args, **kwargs):
    return asyncio.run(reader.run(fn, *args, **kwargs))


@pytest.mark.parametrize("busy", [True, False])
def test_reads_happen_in_reader_processes_with_read_only_connections(db, busy):
    path, _ = db
    reader = Readers(path, ingest_busy=lambda: busy)
    try:
        assert run(reader, where_am_i) != os.getpid()
        assert run(reader, run_names) == [("first",)]
        with pytest.raises(sqlite3.OperationalError):  # refused, however SQLite words it
            run(reader, try_to_write)
        assert run(reader, run_names) == [("first",)]
    finally:
        reader.close()


def test_an_open_read_snapshot_does_not_block_the_writer(db, tmp_path):
    path, writer = db
    reader = Readers(path)

    async def scenario():
        task = asyncio.ensure_future(reader.run(long_read, str(tmp_path)))
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_until(lambda: (tmp_path / "inside").exists(), timeout=60))
        writer.execute("BEGIN IMMEDIATE")  # would fail with SQLITE_BUSY if readers blocked it
        writer.execute("INSERT INTO runs (run_id, run_name, started_at) VALUES ('r2', 'b', 2)")
        writer.execute("COMMIT")
        (tmp_path / "release").touch()
        return await task

    try:
        assert asyncio.run(scenario()) == (1, 1, 2)  # a stable snapshot, then the new row
    finally:
        reader.close()


def test_a_query_past_its_deadline_is_interrupted_and_the_connection_stays_usable(db):
    path, _ = db
    reader = Readers(path, processes=1)
    try:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            run(reader, count_forever, deadline=0.2)
        assert reader.timeouts == 1
        assert run(reader, select_one) == (1,)
    finally:
        reader.close()
