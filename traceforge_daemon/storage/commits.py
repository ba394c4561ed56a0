"""Events submitted on behalf of one HTTP request, and the wait for their commit.

The socket protocol acks batch by batch; an HTTP request that carries events (OTLP
ingest, ``POST /api/ingest``) is answered once, after the transaction holding the last
of its events has committed, so a success means stored, as an ack does. ``commit``
splits the events into batches the writer takes, submits them as batches of one origin
and waits; resent events change nothing (the writer's upserts are keyed on the ids), and
committed events reach the live stream and the forwarder like any others.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from traceforge_protocol import wire

from .guard import Problem
from .store import Store
from .writer import WriteBatch

STOPPING = "the daemon is stopping; send these events again later"


class NotStored(Exception):
    """The events were not committed. ``retryable``: the same events may be stored later
    (the daemon is stopping, or storage is failing for now); else they never will be."""

    def __init__(self, message: str, code: str = wire.SHUTTING_DOWN, retryable: bool = True,
                 retry_after_ms: Optional[int] = None) -> None:
        super().__init__(message)
        self.message, self.code = message, code
        self.retryable, self.retry_after_ms = retryable, retry_after_ms

    @classmethod
    def from_problem(cls, problem: Problem) -> "NotStored":
        return cls(problem.message, problem.code, problem.retryable, problem.retry_after_ms)


class _Request:
    """The origin of one request's batches: done when its last batch is committed."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def ack(self, seq: int) -> None:
        if seq >= self.last_seq and not self.done.done():
            self.done.set_result(None)

    def fail(self, seq: int, problem: Problem) -> None:
        if not self.done.done():
            self.done.set_exception(NotStored.from_problem(problem))

    def settled(self, size: int) -> None:
        """Nothing to release: a request's bounds are its body's, already read."""


async def commit(store: Store, batches: list[tuple[int, str, list]], session: str,
                 dropped: dict | None = None) -> None:
    """Store ``batches`` (each: pid, host, events) and return once all are committed;
    ``dropped`` counts (a client's drop report) ride on the first. Raises NotStored."""
    chunks = []
    for pid, host, events in batches:
        for start in range(0, len(events), wire.MAX_BATCH_EVENTS):
            chunks.append((pid, host, events[start:start + wire.MAX_BATCH_EVENTS]))
    if dropped and not chunks and batches:  # a drop report alone still has to be stored
        chunks.append((batches[0][0], batches[0][1], []))
    if not chunks:
        return
    if not store.accepting:
        raise NotStored(STOPPING)
    await store.wait_for_room()
    if not store.accepting:
        raise NotStored(STOPPING)
    request = _Request(len(chunks))
    for seq, (pid, host, events) in enumerate(chunks, start=1):
        store.submit(WriteBatch(request, seq, events, pid, host, session,
                                dict(dropped or {}) if seq == 1 else {}))
    await request.done
