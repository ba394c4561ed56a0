"""The SQLite schema, its version (PRAGMA user_version) and the migrations to reach it.

Two tables, ``runs`` and ``steps``, whose column names are the ones TraceForge has
always used (queries written against earlier databases still read), with what the
queries need added:

- steps gain ``status`` (running, ok, error), the emitting process (``pid``, ``host``),
  cache token counts, the error's type and traceback, and metadata;
- ``cost_usd`` may be NULL: no price is known (the step is *unpriced* if it used tokens,
  ``rows.UNPRICED_SQL``);
- ``input_data`` may be NULL for the moment between a step's end arriving before its
  start (possible after a reconnect);
- indexes serve the run list, the run detail, and every search filter: by name, time,
  error status (a partial index over failed steps only) and total tokens.

Version 2 links a replayed run to the step it replays. The link travels in the run's
metadata (``traceforge.replay_of_run_id``, ``traceforge.replay_of_step_id``, set by
``traceforge_client.replay``) and shows as two generated columns, so the writer and
the wire protocol need nothing new. It also indexes runs by name and by status, which
the run list filters on once runs number in the hundreds of thousands, and failed
steps by run and by name (partial indexes: only failed rows pay for them), so "the
errors of this run" or "of this step name" never walk every step of a frequent name.

Version 3 gives ended steps a commit order, for forwarding to an OpenTelemetry
collector (``forwarding.py``). ``step_commits`` logs each step once, when its end is
first committed, numbered in commit order by ``seq``; ``forward_cursors`` keeps, per
endpoint, how far the log has been delivered. The writer keeps the log, and only while
some cursor exists (``daemon_events.EndLog``): a daemon that never forwarded pays
nothing. (Triggers would keep it without writer code, but their mere presence on
``steps`` cost the writer a quarter of its throughput; the writer's one statement per
transaction costs about 5%, and only while forwarding.)

Version 4 adds the status ``incomplete`` for steps and runs whose process went away
without ending them (``sweeps.py``), with partial indexes over the running rows by process,
which the sweeps read, and a partial index of incomplete steps for search.
"""

from __future__ import annotations

import sqlite3

from traceforge_protocol.conventions import REPLAY_OF_RUN_KEY, REPLAY_OF_STEP_KEY

SCHEMA_VERSION = 4
MIN_SQLITE = (3, 35, 0)  # UPSERT with several ON CONFLICT targets, RETURNING

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    run_name    TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    status      TEXT NOT NULL DEFAULT 'running',  -- running | success | error | incomplete
    metadata    TEXT NOT NULL DEFAULT '{}',        -- JSON
    error       TEXT,
    pid         INTEGER,
    host        TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    step_id            TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL,
    parent_step_id     TEXT,                       -- NULL for root steps
    step_name          TEXT NOT NULL,
    model              TEXT,
    input_data         TEXT,                       -- JSON
    output_data        TEXT,                       -- JSON, NULL until the step ends
    tokens_input       INTEGER NOT NULL DEFAULT 0,
    tokens_output      INTEGER NOT NULL DEFAULT 0,
    tokens_cache_read  INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL DEFAULT 0.0,           -- NULL: unpriced
    latency_ms         REAL,
    started_at         REAL NOT NULL,
    ended_at           REAL,
    status             TEXT NOT NULL DEFAULT 'running',  -- running | ok | error | incomplete
    error              TEXT,                       -- "Type: message", NULL on success
    error_type         TEXT,
    traceback          TEXT,
    metadata           TEXT,                       -- JSON
    pid                INTEGER,
    host               TEXT
);
CREATE INDEX IF NOT EXISTS idx_steps_run_id  ON steps(run_id, started_at);
CREATE INDEX IF NOT EXISTS idx_steps_parent  ON steps(parent_step_id) WHERE parent_step_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_steps_name    ON steps(step_name, started_at);
CREATE INDEX IF NOT EXISTS idx_steps_started ON steps(started_at);
CREATE INDEX IF NOT EXISTS idx_steps_errors  ON steps(started_at) WHERE status = 'error';
CREATE INDEX IF NOT EXISTS idx_steps_tokens  ON steps(tokens_input + tokens_output);
CREATE INDEX IF NOT EXISTS idx_runs_started  ON runs(started_at);
CREATE TABLE IF NOT EXISTS client_drops (
    session      TEXT NOT NULL,
    pid          INTEGER,
    host         TEXT,
    reason       TEXT NOT NULL,
    count        INTEGER NOT NULL,
    reported_at  REAL NOT NULL
);
"""


def _metadata_value(key: str) -> str:
    """A generated-column expression reading ``key`` from runs.metadata. json_valid
    guards it: a malformed metadata string must never fail the writer's insert."""
    return f"""CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$."{key}"') END"""


SCHEMA_V2 = f"""
ALTER TABLE runs ADD COLUMN replay_of_run_id TEXT
    GENERATED ALWAYS AS ({_metadata_value(REPLAY_OF_RUN_KEY)}) VIRTUAL;
ALTER TABLE runs ADD COLUMN replay_of_step_id TEXT
    GENERATED ALWAYS AS ({_metadata_value(REPLAY_OF_STEP_KEY)}) VIRTUAL;
CREATE INDEX IF NOT EXISTS idx_runs_replay_of_run ON runs(replay_of_run_id, started_at)
    WHERE replay_of_run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_runs_replay_of_step ON runs(replay_of_step_id, started_at)
    WHERE replay_of_step_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_steps_errors_by_run ON steps(run_id, started_at)
    WHERE status = 'error';
CREATE INDEX IF NOT EXISTS idx_steps_errors_by_name ON steps(step_name, started_at)
    WHERE status = 'error';
CREATE INDEX IF NOT EXISTS idx_runs_name ON runs(run_name, started_at);
CREATE INDEX IF NOT EXISTS idx_runs_status ON runs(status, started_at);
"""


SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS step_commits (
    seq          INTEGER PRIMARY KEY,  -- never reused: the newest row is never deleted
    step_id      TEXT NOT NULL,
    committed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS forward_cursors (
    endpoint     TEXT PRIMARY KEY,
    sent_seq     INTEGER NOT NULL,     -- every logged step up to here was accepted
    sending_seq  INTEGER NOT NULL,     -- a batch up to here was being sent when last written
    spans_sent   INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
"""

SCHEMA_V4 = """
CREATE INDEX IF NOT EXISTS idx_steps_running ON steps(pid, host) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS idx_runs_running ON runs(pid, host) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS idx_steps_incomplete ON steps(started_at) WHERE status = 'incomplete';
"""


class SchemaError(Exception):
    """The database cannot be used: too new, or SQLite itself is too old."""


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise SchemaError(
            f"SQLite {sqlite3.sqlite_version} is too old; TraceForge needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (upgrade Python or its sqlite3 library)"
        )


def check_integrity(conn: sqlite3.Connection, path: object) -> None:
    """SQLite's ``PRAGMA quick_check`` (every page and index entry, without comparing index
    contents to the tables): SchemaError naming the file and the first problem."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:  # e.g. "database disk image is malformed"
        problems = [f"{type(exc).__name__}: {exc}"]
    if problems != ["ok"]:
        raise SchemaError(
            f"the database {path} is damaged ({problems[0]}); restore a backup, or move it "
            "aside and start with a new one (sqlite3's .recover can save what is readable)"
        )


def check_integrity_of(path: object) -> None:
    """``check_integrity`` on a connection of its own, closed before the database is used:
    a connection that read the file before the writer put it in WAL mode would not see
    the WAL (its checkpoints would copy nothing)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        check_integrity(conn, path)
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; return the version it had before."""
    check_sqlite_version()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"this database has schema version {version}, newer than this TraceForge "
            f"({SCHEMA_VERSION}); upgrade traceforge or use another --db"
        )
    if version == SCHEMA_VERSION:
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version < 1:
            _create_v1(conn)
        if version < 2:
            for statement in _statements(SCHEMA_V2):
                conn.execute(statement)
        if version < 3:
            for statement in _statements(SCHEMA_V3):
                conn.execute(statement)
        if version < 4:
            for statement in _statements(SCHEMA_V4):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def _create_v1(conn: sqlite3.Connection) -> None:
    version_0 = _has_table(conn, "steps")
    if version_0:
        _set_aside_version_0_tables(conn)
    for statement in _statements(SCHEMA_V1):
        conn.execute(statement)
    if version_0:
        _copy_version_0_rows(conn)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


VERSION_0_INDEXES = ("idx_steps_run_id", "idx_steps_parent", "idx_steps_name",
                "idx_steps_started", "idx_runs_started")


def _set_aside_version_0_tables(conn: sqlite3.Connection) -> None:
    """Tables but no schema version: a database written by the single-process TraceForge
    library, before the daemon existed. Its NOT NULL input_data and cost_usd cannot be
    relaxed in place, so rename its tables and copy the rows over."""
    for index in VERSION_0_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    conn.execute("ALTER TABLE steps RENAME TO v0_steps")
    conn.execute("ALTER TABLE runs RENAME TO v0_runs")


def _copy_version_0_rows(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, run_name, started_at, ended_at, status, metadata) "
        "SELECT run_id, run_name, started_at, ended_at, status, metadata FROM v0_runs"
    )
    conn.execute(
        "INSERT INTO steps (step_id, run_id, parent_step_id, step_name, model, input_data, "
        "output_data, tokens_input, tokens_output, cost_usd, latency_ms, started_at, ended_at, "
        "error, status) "
        "SELECT step_id, run_id, parent_step_id, step_name, model, input_data, output_data, "
        "tokens_input, tokens_output, cost_usd, latency_ms, started_at, ended_at, error, "
        "CASE WHEN error IS NOT NULL THEN 'error' WHEN ended_at IS NOT NULL THEN 'ok' "
        "ELSE 'running' END FROM v0_steps"
    )
    conn.execute("DROP TABLE v0_steps")
    conn.execute("DROP TABLE v0_runs")


def _statements(script: str) -> list[str]:
    """Split a DDL script (no semicolons inside literals) into single statements."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
