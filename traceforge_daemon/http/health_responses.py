"""What the daemon says about itself: the answers of /api/health and /api/prune, as msgspec
Structs (held to the same rules as ``responses``: no unknown field, real answers checked)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from msgspec import Meta

from .responses import Shape


class DatabaseHealth(Shape):
    path: str
    size_bytes: Annotated[int, Meta(description="The database file plus its WAL")]
    file_bytes: int
    wal_bytes: int
    used_bytes: Annotated[int, Meta(description="Pages holding data")]
    free_page_bytes: Annotated[int, Meta(
        description="Free pages inside the file, reused by later writes")]
    disk_free_bytes: Annotated[Optional[int], Meta(
        description="Free space on the database's filesystem; null where unknown")]
    checkpoints: int
    wal_restarts: Annotated[int, Meta(
        description="Complete copies the writer made before a transaction once the WAL "
                    "was long, so that the transaction starts the WAL over (unless a reader "
                    "still uses it): what keeps the WAL small")]


class OtlpReceiverHealth(Shape):
    """POST /v1/traces since the daemon started."""

    requests: int
    spans_accepted: int
    spans_rejected: int


class ForwarderHealth(Shape):
    """Forwarding to an OTLP endpoint (--otlp-endpoint), since the daemon started."""

    endpoint: str
    protocol: Literal["http/protobuf", "http/json"]
    state: Annotated[Literal["starting", "idle", "ok", "retrying", "stopped"], Meta(
        description="idle: nothing to send; retrying: the endpoint is failing (last_error)")]
    lag_steps: Annotated[int, Meta(description="Ended steps not yet accepted by the endpoint")]
    lag_seconds: Annotated[float, Meta(
        description="How long the oldest of them has been waiting")]
    spans_sent: int
    batches_sent: int
    retries: int
    spans_rejected: Annotated[int, Meta(
        description="Spans the endpoint refused for good (partial success, 400, 413)")]
    possible_duplicates: Annotated[int, Meta(
        description="Spans sent again whose earlier delivery is unknown (a lost answer, "
                    "or a daemon stopped between an accepted batch and its cursor write)")]
    last_error: Optional[str]
    last_error_at: Optional[float]
    last_success_at: Optional[float]


class HealthReason(Shape):
    code: Annotated[str, Meta(description="e.g. disk_full, database_replaced, writer_stopped, "
                                          "storage_errors_recent, connections_refused")]
    status: Literal["degraded", "failing"]
    message: str
    since: Annotated[float, Meta(description="Unix time it was first seen")]


class StorageErrorSeen(Shape):
    message: str
    at: float


class WriterHealth(Shape):
    running: bool
    restarts: int


class PruneResult(Shape):
    """What a prune deleted, and the bytes the data takes before and after."""

    runs_deleted: int
    steps_deleted: int
    drops_deleted: int
    bytes_before: Annotated[int, Meta(description="Bytes in use by data before")]
    bytes_after: Annotated[int, Meta(description="Bytes in use by data after")]
    free_bytes_after: Annotated[int, Meta(
        description="Free pages left in the file, which new writes reuse")]
    seconds: float


class LastPrune(PruneResult):
    at: float


class RetentionHealth(Shape):
    older_than_s: Optional[float]
    max_bytes: Optional[int]
    last_prune: Optional[LastPrune]


class Health(Shape):
    """The daemon's health: a status with its reasons, version, uptime, connections, events
    received and committed, the database's size and retention, OTLP ingest and forwarding."""

    status: Annotated[Literal["ok", "degraded", "failing"], Meta(
        description="ok; degraded: storing works but something needs a look; failing: what "
                    "clients send is not being stored now (they keep it and resend)")]
    reasons: list[HealthReason]
    version: str
    pid: int
    uptime_s: float
    connections: int
    connections_total: int
    rejected_connections: int
    refused_at_limit: int
    max_connections: int
    events_received: int
    events_committed: int
    events_pending: int
    bytes_pending: int
    transactions: int
    storage_errors: int
    batches_rejected: int
    last_storage_error: Optional[StorageErrorSeen]
    writer: WriterHealth
    client_drops: dict[str, int]
    database: DatabaseHealth
    retention: RetentionHealth
    socket: str
    tcp: Optional[str]
    http: Optional[str]
    forwarder: Optional[ForwarderHealth]
    otlp_receiver: OtlpReceiverHealth
    token_required: Annotated[bool, Meta(
        description="The HTTP API needs the daemon's token (a Bearer header or the login "
                    "cookie): it listens beyond loopback")]
