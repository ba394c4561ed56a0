"""What the Store reports about itself: its part of /api/health, and the reasons that make
the daemon's status ``degraded`` or ``failing`` (``health.py`` defines the words)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from .checkpointer import WAL_ALARM_BYTES
from .guard import DISK_RESERVE_BYTES
from .health import DEGRADED, FAILING, Reason, recent

DISK_LOW_BYTES = 4 * DISK_RESERVE_BYTES
"""Free space under which health says ``degraded`` (``disk_low``) before writes stop."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class StoreHealth:
    def __init__(self, store: Any) -> None:
        self.store = store
        """The ``store.Store`` this reports on (not imported: it imports this module)."""
        self.writer_restarts = 0
        self.writer_died_at = 0.0
        self.writer_death: Optional[str] = None

    def writer_died(self, why: str) -> None:
        self.writer_restarts += 1
        self.writer_died_at = time.time()
        self.writer_death = why

    def reasons(self) -> list[Reason]:
        store = self.store
        writer = store.writer
        found = []
        if writer is None or not writer.alive:
            if not store._closing:
                found.append(Reason("writer_stopped", FAILING,
                                    f"the database writer is not running "
                                    f"({self.writer_death or 'not started'})",
                                    self.writer_died_at or time.time()))
            return found
        guard = writer.guard
        if guard.problem is not None:
            found.append(Reason(guard.problem.reason, FAILING, guard.problem.message,
                                guard.problem_since))
        elif recent(guard.last_error_at):
            found.append(Reason("storage_errors_recent", DEGRADED,
                                f"a write failed {time.time() - guard.last_error_at:.0f} s "
                                f"ago: {guard.last_error}", guard.last_error_at))
        if recent(self.writer_died_at):
            found.append(Reason("writer_restarted", DEGRADED,
                                f"the database writer stopped and was restarted: "
                                f"{self.writer_death}", self.writer_died_at))
        checkpointer = store.checkpointer
        if checkpointer is not None and checkpointer.failing_since:
            found.append(Reason("checkpoint_failing", DEGRADED,
                                f"checkpoints fail: {checkpointer.last_error}",
                                checkpointer.failing_since))
        wal = _size(Path(f"{store.path}-wal"))
        if wal > WAL_ALARM_BYTES:
            found.append(Reason("wal_large", DEGRADED,
                                f"the WAL holds {wal:,} bytes; a reader may be holding an old "
                                "snapshot", time.time()))
        free = guard.free_bytes()
        if free is not None and free < DISK_LOW_BYTES and guard.problem is None:
            found.append(Reason("disk_low", DEGRADED,
                                f"{free:,} bytes free on the database's filesystem; writes "
                                f"stop below {DISK_RESERVE_BYTES:,}", time.time()))
        return found

    def report(self) -> dict:
        store = self.store
        stats, writer, checkpointer = store.stats, store.writer, store.checkpointer
        file_bytes = _size(store.path)
        wal_bytes = _size(Path(f"{store.path}-wal"))
        free = writer.guard.free_bytes() if writer is not None else None
        guard = writer.guard if writer is not None else None
        return {
            "events_committed": stats.events_committed,
            "events_pending": store.pending_events,
            "bytes_pending": store.pending_bytes,
            "transactions": stats.transactions,
            "storage_errors": stats.storage_errors,
            "batches_rejected": stats.batches_rejected,
            "last_storage_error": None if guard is None or not guard.last_error else {
                "message": guard.last_error, "at": round(guard.last_error_at, 3)},
            "writer": {"running": writer is not None and writer.alive,
                       "restarts": self.writer_restarts},
            "client_drops": dict(stats.drops_reported),
            "database": {
                "path": str(store.path),
                "size_bytes": file_bytes + wal_bytes,
                "file_bytes": file_bytes,
                "wal_bytes": wal_bytes,
                "used_bytes": (stats.page_count - stats.freelist_count) * stats.page_size,
                "free_page_bytes": stats.freelist_count * stats.page_size,
                "disk_free_bytes": free,
                "checkpoints": checkpointer.checkpoints if checkpointer else 0,
                "wal_restarts": checkpointer.wal_restarts if checkpointer else 0,
            },
            "retention": {
                "older_than_s": store.retention,
                "max_bytes": store.retention_bytes,
                "last_prune": store.last_prune,
            },
        }
