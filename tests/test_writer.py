"""The single writer thread on its own, in-process: whatever one transaction raises, the
thread lives on and the next batch commits."""

from __future__ import annotations

import queue

from protocol_support import RUN_ID, STEP_ID, T0

from traceforge_daemon.storage.checkpointer import Checkpointer
from traceforge_daemon.storage.writer import WriteBatch, Writer
from traceforge_protocol import wire


def test_a_batch_sqlite_cannot_hold_fails_alone_and_the_writer_carries_on(tmp_path):
    outcomes: "queue.Queue[tuple]" = queue.Queue()
    path = str(tmp_path / "traceforge.db")
    checkpointer = Checkpointer(path)

    def settled(committed: list, failed: list) -> None:
        if committed:
            outcomes.put(("committed", [item.seq for item in committed]))
        if failed:
            outcomes.put(("failed", [item.seq for item, _ in failed]))

    writer = Writer(path, checkpointer, on_settled=settled,
                    on_died=lambda exc, in_hand: outcomes.put(("died", repr(exc))))
    checkpointer.start()
    writer.start()
    try:
        # Built directly, so the decoder's range check is not there to stop it: SQLite
        # raises OverflowError (not an sqlite3.Error) for an integer beyond 64 bits.
        too_big = wire.StepEnd(run_id=RUN_ID, step_id=STEP_ID, name="s", start_ns=T0,
                               end_ns=T0 + 1, tokens_input=2**63)
        writer.submit(WriteBatch(origin=None, seq=1, events=[too_big], pid=1, host="h"))
        assert outcomes.get(timeout=10) == ("failed", [1])
        fine = wire.StepEnd(run_id=RUN_ID, step_id=STEP_ID, name="s", start_ns=T0,
                            end_ns=T0 + 1, tokens_input=wire.INT64_MAX)
        writer.submit(WriteBatch(origin=None, seq=2, events=[fine], pid=1, host="h"))
        assert outcomes.get(timeout=10) == ("committed", [2])
        assert writer.stats.storage_errors == 1 and writer.stats.events_committed == 1
    finally:
        writer.stop()
        checkpointer.stop()
