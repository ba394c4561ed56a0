"""What the ingest side counts, for ``/api/health``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IngestStats:
    events_received: int = 0
    connections_total: int = 0
    rejected_connections: int = 0
