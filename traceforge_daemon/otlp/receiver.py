"""OTLP spans into the store, through the same single writer as every client's events.

``Receiver.accept`` decodes a request's spans into the protocol's events (``decode``)
and commits them (``storage.commits``): it returns once they are stored, so an OTLP
exporter's success means stored, as a client's ack does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ..storage import commits
from ..storage.store import Store
from .decode import decode_request


@dataclass
class ReceiverStats:
    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0


class Receiver:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = ReceiverStats()

    async def accept(self, request: trace_service_pb2.ExportTraceServiceRequest,
                     ) -> tuple[int, Optional[str]]:
        """Store the request's valid spans; (spans rejected, why) once committed."""
        self.stats.requests += 1
        decoded = decode_request(request)
        await commits.commit(self.store, decoded.batches, "otlp")
        self.stats.spans_accepted += decoded.accepted
        self.stats.spans_rejected += decoded.rejected
        message = "; ".join(decoded.problems) if decoded.rejected else None
        return decoded.rejected, message

    def health(self) -> dict:
        return {"requests": self.stats.requests, "spans_accepted": self.stats.spans_accepted,
                "spans_rejected": self.stats.spans_rejected}
