"""(a) The commit-per-write design, the reference ingest is compared with: each process
writes each step straight into SQLite itself, as TraceForge's single-process library did
before the daemon, an INSERT + commit at start and an UPDATE + commit at end, with that
library's schema. Run by bench/ingest.py, whose --direct-worker mode calls direct_worker."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

from _common import GROUP, INPUT_JSON, OUTPUT_JSON
from _workers import run_workers, wait_for_go

INGEST_SCRIPT = str(Path(__file__).resolve().parent / "ingest.py")

# The single-process library's schema (schema version 0; storage/schema.py migrates it).
DIRECT_SCHEMA = """
CREATE TABLE runs (
run_id TEXT PRIMARY KEY,
run_name TEXT NOT NULL,
started_at REAL NOT NULL,
ended_at REAL,
status TEXT NOT NULL DEFAULT 'running',
metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE steps (
step_id TEXT PRIMARY KEY,
run_id TEXT NOT NULL REFERENCES runs,
parent_step_id TEXT,
step_name TEXT NOT NULL,
model TEXT,
input_data TEXT NOT NULL,
output_data TEXT,
tokens_input INTEGER NOT NULL DEFAULT 0,
tokens_output INTEGER NOT NULL DEFAULT 0,
cost_usd REAL NOT NULL DEFAULT 0.0,
latency_ms REAL NOT NULL DEFAULT 0.0,
started_at REAL NOT NULL,
ended_at REAL,
error TEXT
);
CREATE INDEX idx_steps_run_id ON steps(run_id);
CREATE INDEX idx_steps_parent ON steps(parent_step_id);
CREATE INDEX idx_steps_name ON steps(step_name);
CREATE INDEX idx_steps_started ON steps(started_at);
CREATE INDEX idx_runs_started ON runs(started_at);
"""

# The columns the daemon's UPSERT_STEP_END writes, as a plain INSERT.


def make_direct_db(path: Path, journal: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(DIRECT_SCHEMA)
    if journal == "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.commit()
    conn.close()


def direct_worker(db: str, steps: int) -> None:
    """One process of the commit-per-write design: INSERT + commit at start, UPDATE + commit at end."""
    conn = sqlite3.connect(db)  # stdlib defaults, as that library's storage used them
    busy_retries = 0

    def commit_write(sql: str, params: tuple) -> None:
        nonlocal busy_retries
        while True:  # that library would have raised "database is locked"; retry instead
            try:
                conn.execute(sql, params)
                conn.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                conn.rollback()
                busy_retries += 1

    def start(step_id, run_id, parent, name):
        commit_write(
            "INSERT INTO steps (step_id, run_id, parent_step_id, step_name, model, input_data, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (step_id, run_id, parent, name, None, INPUT_JSON, time.time()),
        )
        return time.time()

    def end(step_id, started):
        now = time.time()
        commit_write(
            "UPDATE steps SET output_data = ?, tokens_input = ?, tokens_output = ?, "
            "cost_usd = ?, latency_ms = ?, ended_at = ?, error = ? WHERE step_id = ?",
            (OUTPUT_JSON, 0, 0, 0.0, (now - started) * 1000, now, None, step_id),
        )

    wait_for_go()
    first = time.time()
    run_id = str(uuid.uuid4())
    commit_write("INSERT INTO runs (run_id, run_name, started_at, metadata) VALUES (?, ?, ?, ?)",
                 (run_id, "ingest-bench", first, "{}"))
    done = 0
    while done < steps:
        outer = str(uuid.uuid4())
        outer_started = start(outer, run_id, None, "outer")
        done += 1
        for _ in range(min(GROUP - 1, steps - done)):
            inner = str(uuid.uuid4())
            end(inner, start(inner, run_id, outer, "inner"))
            done += 1
        end(outer, outer_started)
    commit_write("UPDATE runs SET ended_at = ?, status = 'success' WHERE run_id = ?",
                 (time.time(), run_id))
    print(json.dumps({"first": first, "end": time.time(), "steps": done,
                      "busy_retries": busy_retries, "cpu": time.process_time()}))


def bench_direct(tmp: Path, journal: str, procs: int, total_steps: int) -> dict:
    db = tmp / f"direct-{journal}-{procs}.db"
    make_direct_db(db, journal)
    per_process = max(GROUP, total_steps // procs)
    released, results, _ = run_workers(
        INGEST_SCRIPT, [["--direct-worker", str(db), str(per_process)]] * procs, dict(os.environ))
    first = min(r["first"] for r in results)
    end = max(r["end"] for r in results)
    steps = sum(r["steps"] for r in results)
    conn = sqlite3.connect(db)
    (stored,) = conn.execute("SELECT count(*) FROM steps WHERE ended_at IS NOT NULL").fetchone()
    conn.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return {
        "steps": steps, "stored": stored, "seconds": end - first,
        "steps_per_s": steps / (end - first),
        "busy_retries": sum(r["busy_retries"] for r in results),
    }

