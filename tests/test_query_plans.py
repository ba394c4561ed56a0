"""EXPLAIN QUERY PLAN for the SQL the API really runs: every search filter, alone and
with the others, the run list and its totals, the run detail and the step detail
must find their rows through an index, never by a full scan of ``steps``.

The one index walk allowed without a search constraint is a search with no filter
(or only has_error=false), which reads idx_steps_started newest first and stops at
the page size.
"""

from __future__ import annotations

import itertools
import re
import sqlite3

import pytest

from traceforge_daemon.storage import schema, steps_query
from traceforge_daemon.storage.runs_query import TOTALS_SQL, RunFilter, run_list_sql
from traceforge_daemon.storage.steps_query import StepFilter, choose_index, search_sql

FULL_SCAN = re.compile(r"\bSCAN (steps|s)\b(?! USING (COVERING )?INDEX)")


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    conn = sqlite3.connect(tmp_path_factory.mktemp("plans") / "plans.db", isolation_level=None)
    schema.migrate(conn)
    conn.execute("BEGIN")
    rows = [(f"{i:016x}", f"{i // 100:032x}", None, f"name{i % 7}", i * 0.001,
             "error" if i % 50 == 0 else "ok", i % 3) for i in range(5000)]
    conn.executemany(
        "INSERT INTO steps (step_id, run_id, parent_step_id, step_name, started_at, status, "
        "tokens_input) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO runs (run_id, run_name, started_at) VALUES (?, ?, ?)",
                     [(f"{r:032x}", f"run{r % 3}", r * 0.1) for r in range(50)])
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    yield conn
    conn.close()


def plan(conn, sql, params) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


FILTERS = {
    "run_id": ("1" * 32, "SEARCH steps USING INDEX idx_steps_run_id (run_id=?"),
    "step_name": ("name1", "SEARCH steps USING INDEX idx_steps_name (step_name=?"),
    "has_error": (True, "SCAN steps USING INDEX idx_steps_errors"),  # holds only errors
    "min_tokens": (2, "SEARCH steps USING INDEX idx_steps_tokens (<expr>>?)"),
    "start_time": (1.0, "SEARCH steps USING INDEX idx_steps_started (started_at>?)"),
    "end_time": (2.0, "SEARCH steps USING INDEX idx_steps_started (started_at<?)"),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_search_filter_searches_its_own_index(conn, name):
    value, expected = FILTERS[name]
    f = StepFilter(**{name: value})
    details = plan(conn, *search_sql(f, choose_index(conn, f)))
    assert not any(FULL_SCAN.search(d) for d in details), details
    assert any(d.startswith(expected) for d in details), details
    if name != "min_tokens":  # every other index already yields newest first
        assert not any("TEMP B-TREE" in d for d in details), details


def test_every_combination_of_search_filters_avoids_a_full_scan(conn):
    for size in range(2, len(FILTERS) + 1):
        for names in itertools.combinations(FILTERS, size):
            f = StepFilter(**{n: FILTERS[n][0] for n in names}, cursor=(3.0, 10))
            details = plan(conn, *search_sql(f, choose_index(conn, f)))
            assert not any(FULL_SCAN.search(d) for d in details), (names, details)
            assert any(d.startswith("SEARCH steps") for d in details), (names, details)


def test_error_searches_read_only_failed_rows_even_within_a_run_or_a_name(conn):
    for extra, index in (({"run_id": "1" * 32}, "idx_steps_errors_by_run (run_id=?)"),
                         ({"step_name": "name1"}, "idx_steps_errors_by_name (step_name=?)"),
                         ({"min_tokens": 1}, "idx_steps_errors")):
        f = StepFilter(has_error=True, **extra)
        details = plan(conn, *search_sql(f, choose_index(conn, f)))
        assert any(index in d for d in details), (extra, details)
        assert not any("TEMP B-TREE" in d for d in details), details


def test_unfiltered_search_walks_the_time_index_newest_first_without_sorting(conn):
    for f in (StepFilter(), StepFilter(has_error=False)):
        details = plan(conn, *search_sql(f, choose_index(conn, f)))
        assert details == ["SCAN steps USING INDEX idx_steps_started"], details


def test_a_common_min_tokens_value_walks_time_order_instead_of_sorting(conn, monkeypatch):
    monkeypatch.setattr(steps_query, "TOKEN_PROBE_LIMIT", 1000)  # the fixture has 5,000 steps
    conn.execute("BEGIN")
    try:
        conn.execute("UPDATE steps SET tokens_input = 1000")  # every step passes min_tokens
        f = StepFilter(min_tokens=500)
        assert choose_index(conn, f) == "idx_steps_started"
        details = plan(conn, *search_sql(f, choose_index(conn, f)))
    finally:
        conn.execute("ROLLBACK")
    assert details == ["SCAN steps USING INDEX idx_steps_started"], details
    probe = plan(conn, "SELECT COUNT(*) FROM (SELECT 1 FROM steps INDEXED BY idx_steps_tokens "
                 "WHERE tokens_input + tokens_output >= ? LIMIT ?)", (500, 10))
    assert any("SEARCH steps USING" in d and "idx_steps_tokens" in d for d in probe), probe


@pytest.mark.parametrize("run_filter", [
    RunFilter(), RunFilter(name="run1"), RunFilter(status="error"),
    RunFilter(start_time=1.0, end_time=3.0), RunFilter(replay_of="1" * 32),
    RunFilter(name_contains="run", status="running", cursor=(2.0, 5), offset=0),
], ids=["none", "name", "status", "time", "replay_of", "text+status+cursor"])
def test_run_list_and_its_totals_use_indexes(conn, run_filter):
    details = plan(conn, *run_list_sql(run_filter))
    assert not any(re.search(r"\bSCAN runs\b(?! USING)", d) for d in details), details
    assert not any("TEMP B-TREE" in d for d in details), details
    totals = plan(conn, TOTALS_SQL.format(marks="?, ?"), ["1" * 32, "2" * 32])
    assert any("SEARCH steps USING INDEX idx_steps_run_id (run_id=?)" in d for d in totals)
    assert not any(FULL_SCAN.search(d) for d in totals), totals


def test_run_detail_and_step_detail_read_by_index(conn):
    detail = plan(conn, "SELECT step_id FROM steps INDEXED BY idx_steps_run_id "
                  "WHERE run_id = ? ORDER BY started_at, rowid", ("1" * 32,))
    assert detail == ["SEARCH steps USING INDEX idx_steps_run_id (run_id=?)"], detail
    children = plan(conn, "SELECT step_id FROM steps INDEXED BY idx_steps_parent "
                    "WHERE parent_step_id = ? ORDER BY started_at", ("1" * 16,))
    assert any("idx_steps_parent (parent_step_id=?)" in d for d in children), children
