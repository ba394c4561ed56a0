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
import os
import sqlite3
import threading
import time
from typing import Optional

logger = logging.getLogger("traceforge.daemon")

PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"
TRUNCATE = "PRAGMA wal_checkpoint(TRUNCATE)"

RESTART_FRAMES = 4096
"""WAL frames (pages, 4 KiB by default) after which the writer makes the WAL start over:
16 MiB, four times SQLite's automatic checkpoint, so the writer does it rarely."""
WAL_ALARM_BYTES = 1 << 30
"""A WAL file this large means checkpoints are not keeping up (a reader that never ends, a
failing disk): said once in the log, since the database is still correct, only big."""


class Checkpointer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        (self.page_size,) = self.conn.execute("PRAGMA page_size").fetchone()
        self.wal_path = f"{path}-wal"
        self.checkpoints = 0
        self.wal_restarts = 0  # see make_room
        self.wal_frames = 0  # as of the last checkpoint
        self._lock = threading.Lock()  # one checkpoint at a time: a second would only fail
        self._wake = threading.Event()
        self._stopping = False
        self._warned: set = set()
        self.failing_since = 0.0  # time.time() of the first of the failures going on now
        self.last_error: Optional[str] = None
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
        try:  # waits at most for the copy this thread is doing
            busy, wal_frames, copied = self.copy(writer_conn, PASSIVE)
        except sqlite3.Error as exc:
            self._warn_once("checkpoint before a transaction failed", exc)
            return
        if not busy and wal_frames == copied:
            self.wal_frames = 0
            self.wal_restarts += 1

    def stop(self, timeout: float = 30.0) -> None:
        """After the writer has stopped: copy what is left and empty the WAL file."""
        self._stopping = True
        self._wake.set()
        self.thread.join(timeout)
        try:
            busy, _, _ = self.copy(self.conn, TRUNCATE)
            if busy:  # a reader kept a snapshot open past the busy timeout
                logger.info("the WAL was not emptied at stop; the next start copies it")
        except sqlite3.Error as exc:
            self._warn_once("final checkpoint failed", exc)
        self.conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._checkpoint()
            except Exception as exc:  # a disk error, say: keep trying after the next commit
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.failing_since = self.failing_since or time.time()
                self._warn_once("checkpoint failed", exc)
            else:
                self.failing_since = 0.0

    def copy(self, conn: sqlite3.Connection, pragma: str) -> tuple[int, int, int]:
        """One checkpoint (never two at once): (busy, frames in the WAL, frames copied)."""
        with self._lock:
            return conn.execute(pragma).fetchone()

    def _checkpoint(self) -> None:
        busy, wal_frames, copied = self.copy(self.conn, PASSIVE)
        if not busy:
            self.checkpoints += 1
            self.wal_frames = wal_frames
        try:
            wal_bytes = os.path.getsize(self.wal_path)
        except OSError:
            return
        if wal_bytes > WAL_ALARM_BYTES:
            self._warn_once(
                "the WAL is not being emptied",
                f"{self.wal_path} is {wal_bytes:,} bytes and the last checkpoint copied "
                f"{copied} of {wal_frames} frames; a reader may be holding an old snapshot",
            )

    def _warn_once(self, what: str, detail: object) -> None:
        """Log each kind of trouble once at WARNING, then at DEBUG: the writer carries on."""
        key = (what, type(detail).__name__)
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, "%s: %s", what, detail)
