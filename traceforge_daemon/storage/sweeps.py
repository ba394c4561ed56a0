"""Steps and runs whose process is gone become ``incomplete`` instead of "running" forever.

Every row records the pid and host of the process that sent it (from its hello). A
sweep, run by the writer between batches, looks at the processes that still have running
rows and marks their running steps and runs ``incomplete`` when:

- the process ran on this host and no longer exists (``process_gone``: no such pid, or a
  zombie); this is checked soon after its connection closes without a ``bye``, at every
  start of the daemon, and every SWEEP_INTERVAL; or
- the daemon cannot check it (another host, or a client that sent no pid), it has no open
  connection, and the row started more than ``incomplete_after`` seconds ago.

It is not final: a step's end or a run's end that arrives later (a process that was only
slow, or a resend after a reconnect) sets the status it carries, as always.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from typing import Optional

from . import records
from .writer import WriterJob

LOCAL_HOST = socket.gethostname()
"""The host name clients on this machine put in their hello (``socket.gethostname()``)."""

SWEEP_INTERVAL = 60.0
"""Seconds between sweeps over every process with running rows."""
CLOSE_RECHECKS = (0.2, 2.0, 10.0)
"""Seconds after a connection closes without a bye at which its process is looked at: it
may still be exiting when its socket closes."""
CHUNK_ROWS = 2000
"""Rows one sweep transaction changes at most, so ingest never waits long behind it."""

RUNNING_PROCESSES = """
SELECT pid, host FROM steps WHERE status = 'running'
UNION SELECT pid, host FROM runs WHERE status = 'running'
"""
MARK_STEPS = """
UPDATE steps SET status = 'incomplete'
WHERE rowid IN (SELECT rowid FROM steps WHERE status = 'running' AND pid IS ? AND host IS ?
                AND started_at < ? LIMIT ?)
RETURNING run_id, step_id
"""
MARK_RUNS = """
UPDATE runs SET status = 'incomplete'
WHERE rowid IN (SELECT rowid FROM runs WHERE status = 'running' AND pid IS ? AND host IS ?
                AND started_at < ? LIMIT ?)
RETURNING run_id
"""


def process_gone(pid: Optional[int]) -> bool:
    """True if no process ``pid`` runs on this machine (a zombie counts as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False  # it exists (as another user), or cannot be a pid here
    try:  # Linux: a killed child its parent has not reaped yet is a zombie
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


class IncompleteSweep(WriterJob):
    """One sweep: over one process (``only``), or over every one with running rows."""

    def __init__(self, incomplete_after: float, connected: set,
                 only: Optional[tuple] = None) -> None:
        self.incomplete_after = incomplete_after
        self.connected = connected  # (pid, host) pairs with an open connection, at creation
        self.only = only
        self.pending: Optional[list] = None  # [(pid, host, started before)]
        self.marked_steps = 0
        self.marked_runs = 0
        self._changes: list = []

    def _targets(self, conn: sqlite3.Connection) -> list:
        pairs = [self.only] if self.only else conn.execute(RUNNING_PROCESSES).fetchall()
        now = time.time()
        targets = []
        for pid, host in pairs:
            if host == LOCAL_HOST and pid:
                if process_gone(pid):
                    targets.append((pid, host, float("inf")))
            elif (pid, host) not in self.connected:
                targets.append((pid, host, now - self.incomplete_after))
        return targets

    def step(self, conn: sqlite3.Connection) -> bool:
        if self.pending is None:
            self.pending = self._targets(conn)
        changed: list = []
        budget = CHUNK_ROWS
        conn.execute("BEGIN IMMEDIATE")
        try:
            while self.pending and budget > 0:
                pid, host, before = self.pending[0]
                steps = conn.execute(MARK_STEPS, (pid, host, before, budget)).fetchall()
                budget -= len(steps)
                runs = conn.execute(MARK_RUNS, (pid, host, before, max(budget, 0))).fetchall()
                budget -= len(runs)
                changed += [records.StatusChange(run_id, step_id, "incomplete")
                            for run_id, step_id in steps]
                changed += [records.StatusChange(run_id, None, "incomplete")
                            for (run_id,) in runs]
                if budget > 0:
                    self.pending.pop(0)  # both fitted: this process is done
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.marked_steps += sum(1 for c in changed if c.step_id)
        self.marked_runs += sum(1 for c in changed if not c.step_id)
        self._changes = [records.Changed(changed)] if changed else []
        return not self.pending

    def changes(self) -> list:
        changes, self._changes = self._changes, []
        return changes
