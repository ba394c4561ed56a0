"""OTLP spans into the store, through the same single writer as every client's events.

``Receiver.accept`` decodes a request's spans into the protocol's events
(``decode``), submits them to the Store as batches of one origin, and returns once the
transaction holding the last of them has committed, so an OTLP exporter's success
means stored, as a client's ack does. Resent spans change nothing (the writer's
upserts are keyed on the ids), and committed spans reach the live event stream and the
forwarder like any others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from traceforge_protocol import wire

from ..storage.store import Store
from ..storage.writer import WriteBatch
from .decode import decode_request


class NotStored(Exception):
    """The spans could not be committed now (the daemon is stopping, or storage
    failed); the exporter should retry."""


@dataclass
class ReceiverStats:
    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0


class _Commit:
    """The origin of one request's batches: done when its last batch is committed."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def ack(self, seq: int) -> None:
        if seq >= self.last_seq and not self.done.done():
            self.done.set_result(None)

    def fail(self, seq: int, message: str) -> None:
        if not self.done.done():
            self.done.set_exception(NotStored(message))


class Receiver:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = ReceiverStats()

    async def accept(self, request: trace_service_pb2.ExportTraceServiceRequest,
                     ) -> tuple[int, Optional[str]]:
        """Store the request's valid spans; (spans rejected, why) once committed."""
        self.stats.requests += 1
        decoded = decode_request(request)
        chunks = []
        for pid, host, events in decoded.batches:
            for start in range(0, len(events), wire.MAX_BATCH_EVENTS):
                chunks.append((pid, host, events[start:start + wire.MAX_BATCH_EVENTS]))
        if chunks:
            if not self.store.accepting:
                raise NotStored("the daemon is stopping; send these spans again later")
            await self.store.wait_for_room()
            if not self.store.accepting:
                raise NotStored("the daemon is stopping; send these spans again later")
            commit = _Commit(len(chunks))
            for seq, (pid, host, events) in enumerate(chunks, start=1):
                self.store.submit(WriteBatch(commit, seq, events, pid, host, "otlp"))
            await commit.done
        self.stats.spans_accepted += decoded.accepted
        self.stats.spans_rejected += decoded.rejected
        message = "; ".join(decoded.problems) if decoded.rejected else None
        return decoded.rejected, message

    def health(self) -> dict:
        return {"requests": self.stats.requests, "spans_accepted": self.stats.spans_accepted,
                "spans_rejected": self.stats.spans_rejected}
