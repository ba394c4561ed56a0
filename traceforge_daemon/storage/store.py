"""The Store: the one owner of the database and of everything that touches it.

It opens and closes together the single writer thread (``writer.py``), the thread that
copies the WAL back into the database (``checkpointer.py``) and the pool of read-only
reader processes (``readers.py``). The rest of the daemon sees these doors:

- ``submit(batch)``: events to commit. Once the transaction holding them commits, the
  batch's ``origin`` is told on the event loop (``ack``), or told why not (``fail``), and
  every commit listener (the live event stream) sees the committed batches.
- ``wait_for_room()``: backpressure; ingest awaits it before reading more. The bound is
  in bytes of frames (``max_pending_bytes``) as well as in events.
- ``read(job, *args)``: a query job from ``jobs.py``, run in a reader process, returning
  what the job returns (usually an encoded JSON body), so neither the query nor the
  encoding runs on the event loop.
- ``prune(...)``: a retention job in the writer (``retention.py``).
- ``connection_opened/closed``: which processes are connected, for the sweeps that mark
  the steps of vanished processes incomplete (``sweeps.py``).

The writer thread is supervised: if it ever dies, what it held is failed back to the
clients (retryable: they resend), and a new writer starts; after WRITER_RESTARTS deaths
within RESTART_WINDOW seconds the Store gives up and calls ``on_fatal``, and the daemon
exits non-zero so that a supervisor can start it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from traceforge_protocol import wire

from . import schema, sweeps
from .checkpointer import Checkpointer
from .guard import STORAGE_RETRY_AFTER_MS, Problem, describe
from .readers import Readers
from .retention import Prune, PruneResult
from .store_health import StoreHealth
from .writer import WriteBatch, Writer, WriterJob, WriterStats

logger = logging.getLogger("traceforge.daemon")

INGEST_IDLE_SECONDS = 1.0
"""Ingest counts as busy until this long after the last batch: reads then yield to it."""
WRITER_RESTARTS = 3
RESTART_WINDOW = 60.0
RETENTION_INTERVAL = 600.0
"""Seconds between automatic retention runs (the first runs at start)."""


class BatchOrigin(Protocol):
    """Who submitted a batch: told on the event loop how its commit went."""

    def ack(self, seq: int) -> None:
        """Every batch of this origin up to ``seq`` is committed."""

    def fail(self, seq: int, problem: Problem) -> None:
        """Batch ``seq`` was not committed; ``problem`` says why and whether to resend."""

    def settled(self, size: int) -> None:
        """A batch of ``size`` bytes is no longer waiting (committed or failed)."""


class Store:
    def __init__(self, path: Path, max_pending_events: int,
                 max_pending_bytes: Optional[int] = None,
                 incomplete_after: float = 3600.0,
                 retention: Optional[float] = None, retention_bytes: Optional[int] = None,
                 on_fatal: Callable[[str], None] = lambda reason: None) -> None:
        self.path = path
        self.max_pending_events = max_pending_events
        self.max_pending_bytes = max_pending_bytes if max_pending_bytes else 1 << 62
        """None: bounded in events only (the daemon passes its max_pending_bytes)."""
        self.incomplete_after = incomplete_after
        self.retention, self.retention_bytes = retention, retention_bytes
        self.on_fatal = on_fatal
        self.pending_events = 0
        self.pending_bytes = 0
        self.commit_listeners: list[Callable[[list], None]] = []
        self.checkpointer: Optional[Checkpointer] = None
        self.writer: Optional[Writer] = None
        self.stats = WriterStats()
        self.readers = Readers(path, ingest_busy=self.ingest_busy)
        self.state = StoreHealth(self)
        self.connected: dict[tuple, int] = {}  # (pid, host) -> open connections
        self.last_prune: Optional[dict] = None
        self._pruning = False
        self._restarts: list[float] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._last_batch_at = float("-inf")
        self._room = asyncio.Event()
        self._room.set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closing = False

    # ---- lifecycle ----

    def open(self) -> None:
        """Open (check, migrate) the database and start the writer; call on the loop.
        A database SQLite cannot use raises ``schema.SchemaError`` naming the file."""
        self._loop = asyncio.get_running_loop()
        try:
            schema.check_integrity_of(self.path)
            checkpointer = Checkpointer(str(self.path))
        except schema.SchemaError:
            raise
        except Exception as exc:
            raise schema.SchemaError(f"cannot open the database {self.path}: "
                                     f"{describe(exc)}") from None
        try:
            writer = self._new_writer(checkpointer)
        except BaseException as exc:
            checkpointer.conn.close()
            if isinstance(exc, Exception) and not isinstance(exc, schema.SchemaError):
                raise schema.SchemaError(f"cannot use the database {self.path}: "
                                         f"{describe(exc)}") from None
            raise
        self.checkpointer, self.writer = checkpointer, writer
        checkpointer.start()
        writer.start()
        self.sweep()  # steps left running by processes that died while we were down
        self._every(sweeps.SWEEP_INTERVAL, self.sweep)
        if self.retention is not None or self.retention_bytes is not None:
            self._loop.call_soon(self._auto_prune)
            self._every(RETENTION_INTERVAL, self._auto_prune)

    def _new_writer(self, checkpointer: Checkpointer) -> Writer:
        return Writer(str(self.path), checkpointer, self._settled_threadsafe,
                      self._died_threadsafe, self.stats)

    def _every(self, seconds: float, action: Callable[[], None]) -> None:
        """Run ``action`` every ``seconds`` until the Store closes; only the next call of
        each is kept, so a daemon running for weeks holds as many handles as on day one."""
        slot = len(self._timers)

        def tick() -> None:
            if not self._closing:
                action()
                self._timers[slot] = self._loop.call_later(seconds, tick)  # type: ignore

        self._timers.append(self._loop.call_later(seconds, tick))  # type: ignore

    async def finish_writes(self) -> None:
        """Commit everything submitted (its acks go out) and empty the WAL. Reads still
        work afterwards, so the HTTP API can serve until it stops."""
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        loop = asyncio.get_running_loop()
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await loop.run_in_executor(None, writer.stop)
            await asyncio.sleep(0)  # deliver the acks queued by the final commit
        if self.checkpointer is not None:
            await loop.run_in_executor(None, self.checkpointer.stop)
            self.checkpointer = None

    async def close(self) -> None:
        """Finish the writes, then stop the reader processes. Idempotent."""
        await self.finish_writes()
        await asyncio.get_running_loop().run_in_executor(None, self.readers.close)

    # ---- writes ----

    async def wait_for_room(self) -> None:
        """Backpressure: wait while the writer is too far behind, in events or bytes."""
        while (self.pending_events >= self.max_pending_events
               or self.pending_bytes >= self.max_pending_bytes):
            self._room.clear()
            await self._room.wait()

    def ingest_busy(self) -> bool:
        """Batches arrived within the last second, or are still waiting to be written."""
        return (self.pending_events > 0
                or time.monotonic() - self._last_batch_at < INGEST_IDLE_SECONDS)

    @property
    def accepting(self) -> bool:
        """True while the writer takes batches: from ``open`` until ``finish_writes``."""
        return self.writer is not None and not self._closing

    def submit(self, batch: WriteBatch) -> None:
        self._last_batch_at = time.monotonic()
        self.pending_events += len(batch.events)
        self.pending_bytes += batch.size
        writer = self.writer
        if writer is None or not writer.alive:  # stopping, or between writer restarts
            problem = Problem(wire.STORAGE_ERROR, "writer_stopped",
                              "the database writer is not running", True,
                              STORAGE_RETRY_AFTER_MS)
            self._loop.call_soon(self._settled, [], [(batch, problem)])  # type: ignore
            return
        writer.submit(batch)

    def submit_job(self, job: WriterJob) -> bool:
        if self.writer is None or not self.writer.alive:
            return False
        self.writer.submit(job)
        return True

    def _settled_threadsafe(self, committed: list, failed: list) -> None:
        self._loop.call_soon_threadsafe(self._settled, committed, failed)  # type: ignore

    def _settled(self, committed: list, failed: list) -> None:
        """Acks and errors, in an order the protocol allows: for each connection, the acks
        of its committed batches below its first failed one, then that failure (which
        closes it, so no later ack can cover the failed batch)."""
        first_failed: dict[int, int] = {}
        for item, _ in failed:
            key = id(item.origin)
            first_failed[key] = min(first_failed.get(key, item.seq), item.seq)
        for item in committed:
            origin = item.origin
            if origin is None:  # rows the writer changed itself (records.Changed): never
                continue        # submitted, so nothing to release and nobody to ack
            self._release(item)
            if item.seq < first_failed.get(id(origin), item.seq + 1):
                origin.ack(item.seq)
        for item, problem in failed:
            self._release(item)
            item.origin.fail(item.seq, problem)
        if (self.pending_events < self.max_pending_events
                and self.pending_bytes < self.max_pending_bytes):
            self._room.set()
        if committed:
            for listener in self.commit_listeners:
                try:
                    listener(committed)
                except Exception:
                    logger.exception("commit listener failed")

    def _release(self, item: WriteBatch) -> None:
        self.pending_events -= len(item.events)
        self.pending_bytes -= item.size
        item.origin.settled(item.size)

    # ---- the writer thread's death ----

    def _died_threadsafe(self, exc: BaseException, in_hand: list) -> None:
        self._loop.call_soon_threadsafe(self._writer_died, exc, in_hand)  # type: ignore

    def _writer_died(self, exc: BaseException, in_hand: list) -> None:
        dead = self.writer
        if dead is None:
            return
        logger.error("the database writer stopped: %s", describe(exc), exc_info=exc)
        self.state.writer_died(describe(exc))
        problem = Problem(wire.STORAGE_ERROR, "writer_stopped",
                          f"the database writer stopped ({describe(exc)})", True,
                          STORAGE_RETRY_AFTER_MS)
        queued = dead.take_queued()
        batches = [item for item in in_hand + queued if isinstance(item, WriteBatch)]
        for job in queued:
            if isinstance(job, WriterJob):
                job.settle(RuntimeError("the writer stopped"))
        try:
            dead.conn.close()
        except Exception:
            pass
        self._settled([], [(item, problem) for item in batches])
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
        if len(self._restarts) > WRITER_RESTARTS or self._closing:
            self.writer = None
            self.on_fatal(f"the database writer stopped {len(self._restarts)} times within "
                          f"{RESTART_WINDOW:g} s; last: {describe(exc)}")
            return
        try:
            self.writer = self._new_writer(self.checkpointer)  # type: ignore[arg-type]
        except Exception as error:
            self.writer = None
            self.on_fatal(f"the database writer could not be restarted: {describe(error)}")
            return
        self.writer.start()
        logger.warning("started a new database writer (restart %d within %g s)",
                       len(self._restarts), RESTART_WINDOW)

    # ---- processes, and their steps left running ----

    def connection_opened(self, pid: int, host: str) -> None:
        key = (pid, host)
        self.connected[key] = self.connected.get(key, 0) + 1

    def connection_closed(self, pid: int, host: str, said_bye: bool) -> None:
        key = (pid, host)
        left = self.connected.get(key, 0) - 1
        if left > 0:
            self.connected[key] = left
        else:
            self.connected.pop(key, None)
        if not said_bye and not self._closing:
            for delay in sweeps.CLOSE_RECHECKS:
                self._loop.call_later(delay, self.sweep, key)  # type: ignore[union-attr]

    def sweep(self, only: Optional[tuple] = None) -> None:
        """Mark the running rows of vanished processes incomplete (``sweeps.py``)."""
        if self._closing:
            return
        self.submit_job(sweeps.IncompleteSweep(self.incomplete_after, set(self.connected),
                                               only))

    # ---- retention ----

    async def prune(self, older_than: Optional[float], max_bytes: Optional[int]) -> dict:
        """Delete old traces in the writer, chunk by chunk; the counts when done."""
        future: asyncio.Future = self._loop.create_future()  # type: ignore[union-attr]

        def done(result: Optional[PruneResult], error: Optional[BaseException]) -> None:
            def resolve() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result.as_dict())  # type: ignore[union-attr]
            self._loop.call_soon_threadsafe(resolve)  # type: ignore[union-attr]

        if not self.submit_job(Prune(older_than, max_bytes, done)):
            raise RuntimeError("the database writer is not running")
        result = await future
        self.last_prune = {**result, "at": round(time.time(), 3)}
        return result

    def _auto_prune(self) -> None:
        if self._pruning or self._closing:
            return
        self._pruning = True

        async def run() -> None:
            try:
                result = await self.prune(self.retention, self.retention_bytes)
                if result["runs_deleted"] or result["steps_deleted"]:
                    logger.info("retention deleted %d runs and %d steps (%s -> %s bytes)",
                                result["runs_deleted"], result["steps_deleted"],
                                f"{result['bytes_before']:,}", f"{result['bytes_after']:,}")
            except Exception as exc:
                logger.warning("retention failed: %s", describe(exc))
            finally:
                self._pruning = False

        asyncio.ensure_future(run())

    # ---- reads ----

    async def read(self, job: Callable[..., Any], *args: Any) -> Any:
        """``job(conn, *args)`` in a reader process; raises ``readers.QueryTimeout``."""
        return await self.readers.run(job, *args)

    # ---- health ----

    def health(self) -> dict:
        return self.state.report()

    def reasons(self) -> list:
        return self.state.reasons()
