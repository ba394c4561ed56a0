"""The API's reader pool: read-only connections of its own that never hold up the
writer, and a deadline that interrupts a runaway query."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from traceforge_daemon.reader import QueryTimeout, Reader, snapshot
from traceforge_daemon.writer import open_writer_connection


@pytest.fixture
def db(tmp_path):
    writer = open_writer_connection(str(tmp_path / "reader.db"))
    writer.execute("INSERT INTO runs (run_id, run_name, started_at) VALUES ('r1', 'first', 1)")
    yield tmp_path / "reader.db", writer
    writer.close()


def run(reader: Reader, fn, *args, **kwargs):
    return asyncio.run(reader.run(fn, *args, **kwargs))


def test_reads_happen_on_reader_threads_with_read_only_connections(db):
    path, _ = db
    reader = Reader(path)
    try:
        thread = run(reader, lambda conn: threading.current_thread().name)
        assert thread.startswith("traceforge-reader")
        assert run(reader, lambda conn: conn.execute("SELECT run_name FROM runs").fetchall()) \
            == [("first",)]
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            run(reader, lambda conn: conn.execute(
                "INSERT INTO runs (run_id, run_name, started_at) VALUES ('x', 'x', 1)"))
    finally:
        reader.close()


def test_an_open_read_snapshot_does_not_block_the_writer(db):
    path, writer = db
    reader = Reader(path)
    inside, release = threading.Event(), threading.Event()

    def long_read(conn):
        with snapshot(conn):
            before = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            inside.set()
            release.wait(10)
            again = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        after = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return before, again, after

    async def scenario():
        task = asyncio.ensure_future(reader.run(long_read))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 10)
        writer.execute("BEGIN IMMEDIATE")  # would fail with SQLITE_BUSY if readers blocked it
        writer.execute("INSERT INTO runs (run_id, run_name, started_at) VALUES ('r2', 'b', 2)")
        writer.execute("COMMIT")
        release.set()
        return await task

    try:
        assert asyncio.run(scenario()) == (1, 1, 2)  # a stable snapshot, then the new row
    finally:
        reader.close()


def test_a_query_past_its_deadline_is_interrupted_and_the_connection_stays_usable(db):
    path, _ = db
    reader = Reader(path)
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT COUNT(*) FROM n")
    try:
        with pytest.raises(QueryTimeout, match="longer than 0.2 s"):
            run(reader, lambda conn: conn.execute(endless).fetchone(), deadline=0.2)
        assert reader.timeouts == 1
        assert run(reader, lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    finally:
        reader.close()
