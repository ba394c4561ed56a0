"""Copies the WAL back into the database on its own thread, so the writer never waits for it.

With SQLite's automatic checkpoints, the COMMIT that crosses 1,000 WAL pages copies them
into the database file itself, on the writer's thread: about 12% of the raw insert rate
of our schema (bench/RESULTS.md). Here the writer turns automatic checkpoints off and
nudges this thread after each commit instead. A PASSIVE checkpoint never blocks the
writer or the readers, and ``sqlite3`` releases the GIL while it runs, so the copying
happens on the other core.

The WAL only starts again from the top when a transaction begins after a checkpoint that
copied every frame. Under steady ingest this thread is always a commit behind, so the
WAL would grow without end; once it holds RESTART_FRAMES, the writer finishes the copy
itself before its next transaction (``make_room``), which is cheap because this thread
has copied nearly all of it already.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

logger = logging.getLogger("traceforge.daemon")

RESTART_FRAMES = 4096
"""WAL frames (pages, 4 KiB by default) after which the writer makes the WAL start over:
16 MiB, four times SQLite's automatic checkpoint, so the writer does it rarely."""
WAL_ALARM_BYTES = 1 << 30
"""A WAL this large means checkpoints are not keeping up (a reader that never ends?): said
once in the log, since the database is still correct, only its WAL file big."""


class Checkpointer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        (self.page_size,) = self.conn.execute("PRAGMA page_size").fetchone()
        self.checkpoints = 0
        self.wal_frames = 0  # as of the last checkpoint
        self._wake = threading.Event()
        self._stopping = False
        self._warned = False
        self.thread = threading.Thread(
            target=self._run, name="traceforge-checkpointer", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def nudge(self) -> None:
        """Called by the writer after a commit: there are new frames to copy."""
        self._wake.set()

    def make_room(self, writer_conn: sqlite3.Connection) -> None:
        """On the writer's thread, between transactions: if the WAL is long, copy the
        last frames so that the next transaction starts it again from the top."""
        if self.wal_frames < RESTART_FRAMES:
            return
        try:
            busy, wal_frames, copied = writer_conn.execute(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchone()
        except sqlite3.Error as exc:
            logger.debug("checkpoint before a transaction skipped: %s", exc)
            return
        if wal_frames == copied:
            self.wal_frames = 0

    def stop(self, timeout: float = 30.0) -> None:
        """After the writer has stopped: copy what is left and empty the WAL file."""
        self._stopping = True
        self._wake.set()
        self.thread.join(timeout)
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # a reader still open: its last checkpoint will do it
            logger.debug("final checkpoint skipped: %s", exc)
        self.conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                busy, wal_frames, copied = self.conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
            except sqlite3.Error as exc:  # e.g. SQLITE_BUSY past the timeout: retry next time
                logger.debug("checkpoint skipped: %s", exc)
                continue
            self.checkpoints += 1
            self.wal_frames = wal_frames
            if wal_frames * self.page_size > WAL_ALARM_BYTES and not self._warned:
                self._warned = True
                logger.warning(
                    "the WAL of %s holds %d frames and checkpoints copied only %d: a reader "
                    "may be holding an old snapshot open", self.path, wal_frames, copied,
                )
