"""Schema versions 2 and 3: a version-1 database migrates in place, a replayed run's link
to its original comes out of its metadata without ever failing the writer, and ended
steps are logged in commit order only while a forwarder's cursor exists."""

from __future__ import annotations

import json
import sqlite3

from api_support import call, get
from version0_schema import VERSION_0_SCHEMA
from traceforge_protocol.conventions import REPLAY_OF_RUN_KEY, REPLAY_OF_STEP_KEY
from traceforge_daemon.storage import schema, writer
from traceforge_daemon.storage.daemon_events import CursorWrite, EndLog
from traceforge_protocol import wire

V2_INDEXES = {"idx_runs_replay_of_run", "idx_runs_replay_of_step", "idx_steps_errors_by_run",
              "idx_steps_errors_by_name", "idx_runs_name", "idx_runs_status"}


def _version_1(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema._statements(schema.SCHEMA_V1):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    return conn


def _indexes(conn) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_version_1_database_migrates_in_place_and_derives_replay_links(tmp_path):
    conn = _version_1(tmp_path / "v1.db")
    link = {REPLAY_OF_RUN_KEY: "a" * 32, REPLAY_OF_STEP_KEY: "b" * 16, "other": 1}
    conn.execute("INSERT INTO runs (run_id, run_name, started_at, metadata) VALUES "
                 "('r1', 'replay: x', 1, ?), ('r2', 'plain', 2, '{}'), ('r3', 'bad', 3, '{oops')",
                 (json.dumps(link),))
    assert schema.migrate(conn) == 1
    assert conn.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,)
    assert V2_INDEXES <= _indexes(conn)
    rows = conn.execute("SELECT run_id, replay_of_run_id, replay_of_step_id FROM runs "
                        "ORDER BY run_id").fetchall()
    assert rows == [("r1", "a" * 32, "b" * 16), ("r2", None, None), ("r3", None, None)]
    # malformed metadata written after the migration is stored, not refused
    conn.execute("INSERT INTO runs (run_id, run_name, started_at, metadata) "
                 "VALUES ('r4', 'bad', 4, 'not json')")
    assert conn.execute("SELECT replay_of_run_id FROM runs WHERE run_id = 'r4'").fetchone() \
        == (None,)
    assert schema.migrate(conn) == schema.SCHEMA_VERSION  # already current: nothing to do
    conn.close()


def test_a_new_database_is_created_at_the_current_version(tmp_path):
    conn = sqlite3.connect(tmp_path / "new.db", isolation_level=None)
    assert schema.migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,) == (4,)
    assert V2_INDEXES <= _indexes(conn)
    conn.close()


V0_RUN = "44643ab8-6e5f-4b44-97b1-6b1d63aae594"
V0_STEP = "a1b2c3d4-e5f6-4001-8a2b-3c4d5e6f7081"
V0_DB = VERSION_0_SCHEMA + f"""
INSERT INTO runs VALUES ('{V0_RUN}', 'version 0 run', 100.0, 101.0, 'success', '{{}}');
INSERT INTO steps VALUES ('{V0_STEP}', '{V0_RUN}', NULL, 'summarize', 'claude-sonnet-4-6',
    '{{"q": 1}}', '"ok"', 89, 95, 0.000169, 1333.2, 100.1, 101.4, NULL);
"""


def test_a_version_0_database_with_uuid_ids_is_served_by_the_api(daemon_factory):
    daemon = daemon_factory()
    daemon.home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(daemon.db) as conn:
        conn.executescript(V0_DB)
    daemon.start()
    detail = get(daemon.http_url, f"/api/runs/{V0_RUN}", payloads="true")
    assert detail["run"]["run_name"] == "version 0 run" and detail["roots"] == [V0_STEP]
    assert detail["steps"][0]["input_data"] == {"q": 1}
    assert get(daemon.http_url, f"/api/steps/{V0_STEP}/inputs")["original_output"] == "ok"
    _, text, _ = call(daemon.http_url, "GET", f"/api/runs/{V0_RUN}/export", {"format": "flat"})
    span = json.loads(text)
    assert span["traceId"] == V0_RUN.replace("-", "")
    assert span["spanId"] == V0_STEP.replace("-", "")[-16:]
    _, text, _ = call(daemon.http_url, "GET", f"/api/runs/{V0_RUN}/export")
    [span] = json.loads(text)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert span["traceId"] == V0_RUN.replace("-", "")
    assert span["spanId"] == V0_STEP.replace("-", "")[-16:]
    assert daemon.stop() == 0


def test_version_3_logs_each_step_once_when_its_end_commits_and_only_while_a_cursor_exists(
        tmp_path):
    conn = writer.open_writer_connection(str(tmp_path / "v3.db"))
    end_log = EndLog(conn)
    run = "ab" * 16

    def commit(*events):
        conn.execute("BEGIN IMMEDIATE")
        writer.apply(conn, [writer.WriteBatch(None, 1, list(events), 1, "h")], end_log)
        conn.execute("COMMIT")

    def end(step):
        return wire.StepEnd(run_id=run, step_id=step, name="x", start_ns=1, end_ns=2)

    commit(end("0" * 16))  # no cursor yet: not logged
    commit(CursorWrite("http://c/v1/traces", create=True))
    commit(wire.StepStart(run_id=run, step_id="1" * 16, name="x", start_ns=1))
    commit(end("2" * 16), end("1" * 16))  # one ends first, the other after its start
    commit(end("2" * 16))  # a resent end: already logged
    logged = conn.execute("SELECT seq, step_id FROM step_commits ORDER BY seq").fetchall()
    assert logged == [(1, "2" * 16), (2, "1" * 16)]
    commit(CursorWrite("http://c/v1/traces", 2, 2, 2))  # delivered: the log is pruned
    assert conn.execute("SELECT seq FROM step_commits").fetchall() == [(2,)]  # newest kept
    commit(end("3" * 16))
    assert conn.execute("SELECT MAX(seq) FROM step_commits").fetchone() == (3,)
    conn.close()
