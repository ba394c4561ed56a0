"""``POST /api/ingest``: the socket protocol's events as JSON over HTTP, for shell scripts
and languages without msgpack.

The body is a ``wire.JsonBatch``: the events of one batch (protocol.md section 6, the
same maps as JSON objects) with the sender's pid, host and session in place of a hello,
and optionally its drop counts. It is held to every rule a socket batch is (the same
decoder types, ranges and id formats, no repeated key) and to the same size limit, a
frame's ``--max-frame-bytes`` (gzip allowed), and it passes the same access rules as the
rest of the HTTP API. The answer comes after the commit that stores the events, so a 200
means stored, as an ack does; resending the same events changes nothing. Errors carry the
protocol's ``code``: 400 ``invalid_event`` or ``malformed`` (fix the events, do not resend
them), 413 ``frame_too_large``, 503 ``storage_error`` or ``shutting_down`` with
``retry_after_ms`` and a ``Retry-After`` header (send them again later).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from traceforge_protocol import wire

from ..storage import commits
from .bodies import TooLarge, Unreadable, read_body
from .guard import SETTINGS
from .operations import ApiRoutes
from .reads import STORE
from .responses import IngestAnswer

routes = ApiRoutes("ingest")

RETRY_AFTER_MS = 5000
"""The back-off a sender is told when the events cannot be stored now."""

_encode = msgspec.json.Encoder().encode


def _error(status: int, code: str, message: str, retry_after_ms: int = 0) -> web.Response:
    body = {"error": message, "status": status, "code": code}
    headers = None
    if retry_after_ms:
        body["retry_after_ms"] = retry_after_ms
        headers = {"Retry-After": str(max(1, retry_after_ms // 1000))}
    return web.Response(status=status, body=_encode(body), headers=headers,
                        content_type="application/json")


@routes.post("/api/ingest", summary="Store events sent as JSON", events_body=wire.JsonBatch,
             answer=IngestAnswer, errors=(415, 503))
async def ingest(request: web.Request) -> web.Response:
    """The socket protocol's events (protocol.md section 6) as JSON: the same rules, limits
    and idempotency as a batch on the socket, answered once the events are committed."""
    if request.content_type != "application/json":
        return _error(415, wire.MALFORMED, "send the events as Content-Type: application/json")
    limit = request.app[SETTINGS].max_frame_bytes
    try:
        body = await read_body(request, limit)
    except TooLarge:
        return _error(413, wire.FRAME_TOO_LARGE,
                      f"the body is over {limit} bytes (decompressed); send fewer events")
    except Unreadable as exc:
        answer = _error(400, wire.MALFORMED, f"the body could not be read ({exc}); "
                        "is its Content-Encoding right?")
        answer.force_close()
        return answer
    try:
        batch = wire.decode_json_batch(body)
    except wire.Refused as refused:
        return _error(400, refused.code, refused.message)
    session = batch.session or "http"
    try:
        await commits.commit(request.app[STORE], [(batch.pid, batch.host, batch.events)],
                             session, batch.dropped)
    except commits.NotStored as exc:
        if not exc.retryable:  # SQLite itself refused these events: resending cannot help
            return _error(400, exc.code, exc.message)
        return _error(503, exc.code, exc.message, exc.retry_after_ms or RETRY_AFTER_MS)
    return web.Response(body=_encode({"accepted": len(batch.events)}),
                        content_type="application/json")
