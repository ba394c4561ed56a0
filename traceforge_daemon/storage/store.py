"""The Store: the one owner of the database and of everything that touches it.

It opens and closes together the single writer thread (``writer.py``), the thread that
copies the WAL back into the database (``checkpointer.py``) and the pool of read-only
reader processes (``readers.py``). The rest of the daemon sees three doors:

- ``submit(batch)``: events to commit. Once the transaction holding them commits, the
  batch's ``origin`` is told on the event loop (``ack``), or told why not (``fail``), and
  every commit listener (the live event stream) sees the committed batches.
- ``wait_for_room()``: backpressure; ingest awaits it before submitting more.
- ``read(job, *args)``: a query job from ``jobs.py``, run in a reader process, returning
  what the job returns (usually an encoded JSON body), so neither the query nor the
  encoding runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from .checkpointer import Checkpointer
from .readers import Readers
from .writer import WriteBatch, Writer

logger = logging.getLogger("traceforge.daemon")

INGEST_IDLE_SECONDS = 1.0
"""Ingest counts as busy until this long after the last batch: reads then yield to it."""


class BatchOrigin(Protocol):
    """Who submitted a batch: told on the event loop how its commit went."""

    def ack(self, seq: int) -> None:
        """Every batch of this origin up to ``seq`` is committed."""

    def fail(self, seq: int, message: str) -> None:
        """Batch ``seq`` was not committed; ``message`` says why."""


class Store:
    def __init__(self, path: Path, max_pending_events: int) -> None:
        self.path = path
        self.max_pending_events = max_pending_events
        self.pending_events = 0
        self.commit_listeners: list[Callable[[list], None]] = []
        self.checkpointer: Optional[Checkpointer] = None
        self.writer: Optional[Writer] = None
        self.readers = Readers(path, ingest_busy=self.ingest_busy)
        self._last_batch_at = float("-inf")
        self._room = asyncio.Event()
        self._room.set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._finishing = False

    # ---- lifecycle ----

    def open(self) -> None:
        """Open (and migrate) the database and start the writer; call on the event loop."""
        self._loop = asyncio.get_running_loop()
        checkpointer = Checkpointer(str(self.path))
        try:
            writer = Writer(str(self.path), checkpointer,
                            self._committed_threadsafe, self._failed_threadsafe)
        except BaseException:
            checkpointer.conn.close()
            raise
        self.checkpointer, self.writer = checkpointer, writer
        checkpointer.start()
        writer.start()

    async def finish_writes(self) -> None:
        """Commit everything submitted (its acks go out) and empty the WAL. Reads still
        work afterwards, so the HTTP API can serve until it stops."""
        loop = asyncio.get_running_loop()
        self._finishing = True
        if self.writer is not None:
            await loop.run_in_executor(None, self.writer.stop)
            await asyncio.sleep(0)  # deliver the acks queued by the final commit
            self.writer = None
        if self.checkpointer is not None:
            await loop.run_in_executor(None, self.checkpointer.stop)
            self.checkpointer = None

    async def close(self) -> None:
        """Finish the writes, then stop the reader processes. Idempotent."""
        await self.finish_writes()
        await asyncio.get_running_loop().run_in_executor(None, self.readers.close)

    # ---- writes ----

    async def wait_for_room(self) -> None:
        """Backpressure: wait while the writer is too far behind."""
        while self.pending_events >= self.max_pending_events:
            self._room.clear()
            await self._room.wait()

    def ingest_busy(self) -> bool:
        """Batches arrived within the last second, or are still waiting to be written."""
        return (self.pending_events > 0
                or time.monotonic() - self._last_batch_at < INGEST_IDLE_SECONDS)

    @property
    def accepting(self) -> bool:
        """True while the writer takes batches: from ``open`` until ``finish_writes``."""
        return self.writer is not None and not self._finishing

    def submit(self, batch: WriteBatch) -> None:
        self._last_batch_at = time.monotonic()
        self.pending_events += len(batch.events)
        self.writer.submit(batch)  # type: ignore[union-attr]

    def _committed_threadsafe(self, items: list) -> None:
        self._loop.call_soon_threadsafe(self._committed, items)  # type: ignore[union-attr]

    def _failed_threadsafe(self, items: list, message: str) -> None:
        self._loop.call_soon_threadsafe(self._failed, items, message)  # type: ignore[union-attr]

    def _committed(self, items: list) -> None:
        for item in items:
            self.pending_events -= len(item.events)
            item.origin.ack(item.seq)
        if self.pending_events < self.max_pending_events:
            self._room.set()
        for listener in self.commit_listeners:
            try:
                listener(items)
            except Exception:
                logger.exception("commit listener failed")

    def _failed(self, items: list, message: str) -> None:
        for item in items:
            self.pending_events -= len(item.events)
            item.origin.fail(item.seq, f"storage error, reconnect and resend: {message}")
        self._room.set()

    # ---- reads ----

    async def read(self, job: Callable[..., Any], *args: Any) -> Any:
        """``job(conn, *args)`` in a reader process; raises ``readers.QueryTimeout``."""
        return await self.readers.run(job, *args)

    # ---- health ----

    def health(self) -> dict:
        writer, checkpointer = self.writer, self.checkpointer
        sizes = [p.stat().st_size if p.exists() else 0
                 for p in (self.path, Path(f"{self.path}-wal"))]
        return {
            "events_committed": writer.stats.events_committed if writer else 0,
            "events_pending": self.pending_events,
            "transactions": writer.stats.transactions if writer else 0,
            "storage_errors": writer.stats.storage_errors if writer else 0,
            "client_drops": dict(writer.stats.drops_reported) if writer else {},
            "database": {
                "path": str(self.path),
                "size_bytes": sum(sizes),
                "wal_bytes": sizes[1],
                "checkpoints": checkpointer.checkpoints if checkpointer else 0,
            },
        }
