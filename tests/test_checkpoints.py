"""The WAL is copied into the database by the checkpointer thread, not the writer
(traceforge_daemon/checkpointer.py): the WAL stays small and empties at a clean stop."""

from __future__ import annotations

import os
import sqlite3

from conftest import wait_until


MANY_STEPS = r'''
import traceforge_client as tf
tf.init(max_queue_events=300_000)
with tf.trace_run("bulk"):
    for i in range(60_000):
        with tf.trace_step("step", input_data={"i": i, "text": "x" * 200}) as r:
            r["output"] = {"echo": "y" * 200}
assert tf.flush(60)
'''


def test_checkpoints_keep_the_wal_small_and_a_clean_stop_empties_it(daemon):
    daemon.run_python(MANY_STEPS, timeout=180)
    # About 45 MB went in. With automatic checkpoints off in the writer and no one else
    # copying, all of it would stay in the WAL and the main file would be nearly empty.
    # The checkpointer copies after each commit, so the main file fills up soon after
    # the last one (on a slow machine its copy may still be under way when flush returns).
    main_bytes = wait_until(lambda: (size := os.path.getsize(daemon.db)) > 40_000_000 and size,
                            timeout=60, message="the checkpointer to copy the WAL into the database")
    health = daemon.health()
    assert health["events_committed"] == 120_002
    assert health["database"]["checkpoints"] > 0
    # With copies but no restarts, the WAL would hold about as much as the data (40 MB
    # here). How far past RESTART_FRAMES it gets before the writer starts it over depends
    # on how far the checkpointer lags, so the restarts are counted, not the bytes.
    database = health["database"]
    assert database["wal_restarts"] >= 1
    assert database["wal_bytes"] < main_bytes, (database["wal_bytes"], main_bytes)

    assert daemon.stop() == 0
    wal = f"{daemon.db}-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) == 0
    conn = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM steps WHERE status = 'ok'").fetchone() == (60_000,)
    finally:
        conn.close()
