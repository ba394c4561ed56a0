"""Forwarding: every ended step, as an OTLP span, to an OTLP/HTTP endpoint (a collector).

What is forwarded: each step once it has ended (ok or error), in the order its end was
committed. Schema version 3 numbers ended steps in that order (``step_commits``); a
running step is sent when it ends, and a step's later changes (a start arriving after
its end, filling in its input) are not sent again. Forwarding starts, for an endpoint
the database has not seen, at the log's end: steps that ended earlier are not sent
(``traceforge-daemon export`` writes them to a file a collector can take).

How: one task on the event loop. It reads a batch of up to ``batch_spans`` steps after
its cursor in a reader process, which also builds, encodes and gzips the request (off
the loop and off the writer's path: ingest never waits for it), and POSTs it. Retries
back off exponentially (with jitter, up to MAX_BACKOFF) on network errors and on any
answer but success, 400 and 413, and honour ``Retry-After``; a batch refused as 400
or 413 is halved until the refused span is alone, and that span is counted as rejected
and skipped, so one bad span cannot stop forwarding.

The cursor is durable (``forward_cursors``), written through the single writer: before
a batch is sent its end is recorded as ``sending_seq``, and once accepted ``sent_seq``
moves to it. So nothing is skipped, whatever stops the daemon or the endpoint
(at-least-once). A duplicate needs a batch the endpoint accepted but whose acceptance
was not recorded: the daemon died in the few milliseconds between the two, or the
answer was lost (a timeout) and the batch sent again. Both are counted as
``possible_duplicates`` in /api/health, and a restart logs the range it resends.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from typing import Optional

import aiohttp
import msgspec
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from traceforge_protocol.version import __version__

from ..storage import commits
from ..storage.daemon_events import CursorWrite
from ..storage.store import Store
from . import jobs
from .values import from_json_dict

logger = logging.getLogger("traceforge.daemon")

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""A batch stops growing once its payloads pass this (before compression)."""
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 600.0
BATCH_DELAY = 0.2
"""After a commit wakes the forwarder, it waits this long for more steps to batch."""
IDLE_POLL = 5.0
SPLIT, REJECTED = "split", "rejected"
SESSION = "forwarder"
"""The session of the forwarder's own cursor writes, whose commits do not wake it."""


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


class Forwarder:
    def __init__(self, store: Store, endpoint: str, headers: tuple = (), json: bool = False,
                 batch_spans: int = 512, timeout: float = 10.0) -> None:
        self.store = store
        self.endpoint = endpoint
        self.json = json
        self.batch_spans = batch_spans
        self.timeout = timeout
        self.headers = {
            "Content-Type": "application/json" if json else "application/x-protobuf",
            "Content-Encoding": "gzip",
            "User-Agent": f"traceforge-daemon/{__version__}",
            **dict(headers),
        }
        self.task: Optional[asyncio.Task] = None
        self.session: Optional[aiohttp.ClientSession] = None
        self._wake = asyncio.Event()
        self.state = "starting"
        self.sent_seq = 0
        self.log_end = 0
        self.oldest_at: Optional[float] = None
        self.spans_sent = self.batches_sent = self.retries = 0
        self.spans_rejected = self.possible_duplicates = 0
        self.last_error: Optional[str] = None
        self.last_error_at: Optional[float] = None
        self.last_success_at: Optional[float] = None

    # ---- lifecycle ----

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.store.commit_listeners.append(self._on_commit)
        self.task = asyncio.create_task(self._run(), name="traceforge-forwarder")

    async def stop(self) -> None:
        """Stop sending. The durable cursor stays where the last commit left it."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("the forwarder failed")
        if self._on_commit in self.store.commit_listeners:
            self.store.commit_listeners.remove(self._on_commit)
        if self.session is not None:
            await self.session.close()

    def _on_commit(self, items: list) -> None:
        if any(item.session != SESSION for item in items):  # not only our own cursor
            self._wake.set()

    # ---- the loop ----

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: say so where the user looks, and stop forwarding
            self._failed(f"forwarding stopped: {type(exc).__name__}: {exc}")
            self.state = "stopped"
            logger.exception("the forwarder stopped")

    async def _loop(self) -> None:
        await self._write(CursorWrite(self.endpoint, create=True))
        cursor = await self.store.read(jobs.cursor, self.endpoint)
        self.sent_seq = cursor.sent_seq
        if cursor.sending_seq > cursor.sent_seq:
            unsure = await self.store.read(jobs.count_between, cursor.sent_seq,
                                           cursor.sending_seq)
            self.possible_duplicates += unsure
            logger.warning("forwarding to %s: resending %d spans whose delivery was not "
                           "confirmed before the daemon stopped; they may arrive twice",
                           self.endpoint, unsure)
        limit = self.batch_spans
        while True:
            batch = await self.store.read(jobs.forward_batch, self.sent_seq, limit,
                                          MAX_REQUEST_BYTES, self.json)
            self.log_end, self.oldest_at = batch.log_end, batch.oldest_at
            if batch.spans == 0:
                if batch.through > self.sent_seq:  # logged steps no longer stored
                    await self._advance(batch.through, 0)
                self.state = "idle"
                await self._idle()
                continue
            await self._write(CursorWrite(self.endpoint, self.sent_seq, batch.through))
            outcome = await self._deliver(batch)
            if outcome == SPLIT:
                limit = max(1, batch.spans // 2)
                continue
            if outcome == REJECTED:
                self.spans_rejected += batch.spans
                await self._advance(batch.through, 0)
            else:
                self.spans_sent += outcome
                self.batches_sent += 1
                self.last_success_at = time.time()
                await self._advance(batch.through, outcome)
            limit = min(self.batch_spans, limit * 2)

    async def _idle(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), IDLE_POLL)
        except asyncio.TimeoutError:
            return
        await asyncio.sleep(BATCH_DELAY)  # let a burst of commits make one batch

    async def _advance(self, through: int, spans: int) -> None:
        await self._write(CursorWrite(self.endpoint, through, through, spans))
        self.sent_seq = through

    async def _write(self, event: CursorWrite) -> None:
        """Commit ``event`` through the writer; retried until it is durable."""
        while True:
            if not self.store.accepting:
                await asyncio.Event().wait()  # the daemon is stopping: wait to be cancelled
            try:
                await commits.commit(self.store, [(0, "", [event])], SESSION)
                return
            except commits.NotStored as exc:
                self._failed(f"could not store the forwarding cursor: {exc.message}")
                await asyncio.sleep(FIRST_BACKOFF)

    async def _deliver(self, batch: jobs.Batch):
        """POST until the endpoint takes the batch: the spans it accepted, or SPLIT or
        REJECTED for a batch it refuses for good."""
        backoff = FIRST_BACKOFF
        unsure = False
        while True:
            wait = None
            try:
                async with self.session.post(self.endpoint, data=batch.body,  # type: ignore
                                             headers=self.headers) as response:
                    body = await response.read()
                    status = response.status
                    wait = retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                # Only a request that may have reached the endpoint can duplicate spans.
                unsure = unsure or not isinstance(exc, aiohttp.ClientConnectorError)
                self._failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                if 200 <= status < 300:
                    if unsure:
                        self.possible_duplicates += batch.spans
                    rejected = self._rejected_in(body, response.content_type)
                    self.spans_rejected += rejected
                    self.state = "ok"
                    return batch.spans - rejected
                self._failed(f"HTTP {status}: {body[:300].decode(errors='replace')}")
                if status in (400, 413):
                    if batch.spans > 1:
                        return SPLIT
                    logger.error("forwarding to %s: a span was refused for good (HTTP %d); "
                                 "skipping it", self.endpoint, status)
                    return REJECTED
            self.retries += 1
            self.state = "retrying"
            delay = wait if wait is not None else backoff * random.uniform(0.8, 1.2)
            backoff = min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(delay)
            try:
                self.log_end, self.oldest_at = await self.store.read(jobs.lag_figures,
                                                                     self.sent_seq)
            except Exception:
                pass  # only the health figures go stale

    def _rejected_in(self, body: bytes, content_type: str) -> int:
        """The partial success's rejected_spans, when the answer carries one."""
        if not body:
            return 0
        response = trace_service_pb2.ExportTraceServiceResponse()
        try:
            if content_type == "application/json":
                from_json_dict(msgspec.json.decode(body), response)
            else:
                response.ParseFromString(body)
        except Exception:
            return 0
        partial = response.partial_success
        if partial.rejected_spans:
            logger.warning("forwarding to %s: %d spans rejected: %s", self.endpoint,
                           partial.rejected_spans, partial.error_message)
        return max(0, partial.rejected_spans)

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            logger.warning("forwarding to %s: %s", self.endpoint, message)
        self.last_error, self.last_error_at = message, time.time()

    # ---- health ----

    def health(self) -> dict:
        lag = max(self.log_end - self.sent_seq, 0)
        seconds = time.time() - self.oldest_at if lag and self.oldest_at is not None else 0.0
        return {
            "endpoint": self.endpoint,
            "protocol": "http/json" if self.json else "http/protobuf",
            "state": self.state,
            "lag_steps": lag,
            "lag_seconds": round(max(seconds, 0.0), 3),
            "spans_sent": self.spans_sent,
            "batches_sent": self.batches_sent,
            "retries": self.retries,
            "spans_rejected": self.spans_rejected,
            "possible_duplicates": self.possible_duplicates,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
        }
